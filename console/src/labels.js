// zh-CN labels of the API's codes (the console's language; the API's own messages follow Accept-Language).
export const STATUS = {
  submitted: "待受理", accepted: "已受理", assigned: "已派遣", in_progress: "处置中", on_hold: "挂起",
  resolved: "已处置", closed: "已结案", rejected: "不予受理", duplicate: "重复", cancelled: "已撤回",
};
export const LEVEL = { 0: "网格", 1: "社区", 2: "街道", 3: "区" };
export const CELL_LEVEL = { grid: "网格", community: "社区", street: "街道", district: "区" };
export const LIGHT = { green: "正常", yellow: "预警", red: "超期" };
export const ACTION = {
  submit: "上报", file: "上报", create: "上报", accept: "受理", reject: "不予受理", assign: "派遣", start: "开始处置",
  resolve: "处置完成", verify: "核查结案", close: "结案", rework: "返工", return: "退回", reroute: "改派网格",
  hold: "挂起", resume: "恢复", request_extension: "申请延期", approve_extension: "批准延期",
  deny_extension: "驳回延期", mark_duplicate: "标记重复", supervise: "督办", cancel: "撤回", escalate: "超时升级", critical: "标记紧急",
  rate: "评价", attach: "上传照片", dispatch: "自动派遣",
};
export const ROLE = { admin: "管理员", supervisor: "督办员", worker: "网格员", resident: "居民", system: "系统" };
export const UNIT = { hours: "小时", minutes: "分钟", working_hours: "工作小时", working_days: "工作日" };
export const STAGE = { before: "处置前", after: "处置后" };
