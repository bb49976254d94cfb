"""Work in the field: a worker's tasks, patrols, photos and their storage, the offline sync feed."""
