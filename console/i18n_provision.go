package console

// The provisioning screens' wording (provision.html, provision_task.html, provision_record.html),
// and the actions, triggers and flashes their data names.

// provisionWords are the values of a push record's action, a task's counts and trigger, shown
// through t: TestProvisionWordsTranslated checks each has its Chinese.
var provisionWords = []string{
	"create", "update", "move", "rename", "disable", "delete", "adopt", "error", "unmanaged",
	"planned-create", "planned-update", "planned-move", "planned-delete", "planned-disable",
	"initial", "manual", "schedule", "push", "running", "succeeded", "failed", "cancelled", "user", "department",
}

func init() {
	flashes["push"] = "The push started: this page follows it."
	flashes["retried"] = "Put back in the outbox: pushed again within seconds."
	for k, v := range map[string]string{
		"Provisioning":      "推送到企业微信",
		"Provisioning task": "推送任务",
		"Push records":      "推送记录",
		"Push record":       "推送记录",
		"qiao pushes this enterprise's directory into WeCom: every change within seconds, and a full reconcile on demand or by its cycle.":                            "qiao 将本企业的通讯录推送到企业微信：每次变更数秒内推送，另可随时或按周期全量对账。",
		"This enterprise has no provisioning target. Declare one in the config file (enterprises[].provisioning) or with PUT /api/v1/enterprises/{ent}/provisioning.": "本企业尚未配置推送目标。请在配置文件中声明（enterprises[].provisioning），或调用 PUT /api/v1/enterprises/{ent}/provisioning。",
		"Push now": "立即推送",
		"Dry run":  "演练（不改动）",
		"dry run":  "演练",
		"The test failed: fix what it says, then test again.": "测试未通过：按提示修正后再测试。",
		"Target":                   "目标",
		"WeCom":                    "企业微信",
		"enabled":                  "已启用",
		"disabled":                 "已停用",
		"pushes every change":      "每次变更即推送",
		"pushes by reconcile only": "仅全量对账时推送",
		"Outbox":                   "待推送队列",
		"pending":                  "待推送",
		"parked":                   "已搁置",
		"Created by qiao in WeCom": "qiao 在企业微信中创建的对象",
		"people":                   "人员",
		"departments":              "部门",
		"Last task":                "最近任务",
		"Parked":                   "搁置的对象",
		"Nothing is parked: every change reached WeCom or is waiting its turn.":                          "没有搁置的对象：所有变更都已送达企业微信或正在排队。",
		"WeCom keeps refusing these objects as they are. Fix the data (a change pushes again) or retry.": "企业微信一再拒绝以下对象的当前数据。请修正数据（修改后会再次推送）或重试。",
		"Retry all":                       "全部重试",
		"Retry":                           "重试",
		"Who / what":                      "人员 / 部门",
		"Attempts":                        "尝试次数",
		"Message":                         "说明",
		"Since":                           "起始时间",
		"(removed)":                       "（已删除）",
		"Tasks":                           "任务",
		"WeCom calls":                     "企业微信调用次数",
		"Settings":                        "设置",
		"Root department":                 "根部门",
		"Default department for accounts": "账号默认部门",
		"None: each person goes into their mapped department": "无：每人进入其对应的部门",
		"What is pushed":                               "推送范围",
		"The people of these sources":                  "以下身份源的人员",
		"These departments":                            "以下部门",
		"The whole directory (but WeCom's own people)": "整个通讯录（来自企业微信本身的人员除外）",
		"WeCom userid from":                            "企业微信 userid 取自",
		"Field mapping (WeCom field: local field)":     "字段映射（企业微信字段：本地字段）",
		"Departures":                                   "离职人员",
		"disable in WeCom":                             "在企业微信中禁用",
		"delete from WeCom":                            "从企业微信删除",
		"Full reconcile cycle":                         "全量对账周期",
		"None after the initial push":                  "首次推送后不再对账",
		"hours":                                        "小时",
		"HTTPS proxies":                                "HTTPS 代理",
		"user":                                         "用户",
		"Secrets":                                      "密钥",
		"What every push did, newest first: the incremental pushes of changes and the reconciles.": "每次推送对各对象做了什么，最新在前：变更的增量推送与全量对账。",
		"Time":             "时间",
		"Local":            "本地",
		"WeCom ID":         "企业微信 ID",
		"incremental push": "增量推送",
		"Local data":       "本地数据",
		"WeCom before":     "企业微信（推送前）",
		"WeCom after":      "企业微信（推送后）",
		"WeCom's other fields (qiao does not write them)":      "企业微信的其他字段（qiao 不写入）",
		"Nothing was there before.":                            "推送前不存在。",
		"Nothing is there after.":                              "推送后不存在。",
		"The push started: this page follows it.":              "推送已开始：本页会跟踪其进度。",
		"Put back in the outbox: pushed again within seconds.": "已放回待推送队列：数秒内再次推送。",
		// actions, counts and triggers of provisioning
		"rename":          "改 userid",
		"disable":         "禁用",
		"adopt":           "认领",
		"unmanaged":       "非 qiao 创建（未改动）",
		"planned-create":  "计划新增",
		"planned-update":  "计划更新",
		"planned-move":    "计划移动",
		"planned-delete":  "计划删除",
		"planned-disable": "计划禁用",
		"initial":         "首次推送",
		"push":            "增量推送",
	} {
		if _, dup := zhText[k]; !dup {
			zhText[k] = v
		}
	}
}
