"""The work calendar: working time and deadlines, and the days admins and the holiday library set."""
