package console

import (
	"net/http"

	"github.com/qiao-gateway/qiao/pages"
)

// The console's wording: each English text of the templates ({{t "…"}}) and handlers (tr) with
// its Chinese. TestEveryTextIsTranslated fails on a text missing here.

const (
	zh = "zh-CN"
	en = "en"
)

const langCookie = "qiao_lang"

// lang is the page's language: the console's switch (a cookie), else the browser's
// (pages.Lang: ui_locales, Accept-Language, Chinese by default).
func lang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == zh || c.Value == en) {
		return c.Value
	}
	return pages.Lang(r).Lang
}

// tr is text in lang.
func tr(lang, s string) string {
	if lang == en {
		return s
	}
	if z, ok := zhText[s]; ok {
		return z
	}
	return s
}

var zhText = map[string]string{
	// layout
	"Admin console":    "管理控制台",
	"Overview":         "概览",
	"Identity sources": "身份源",
	"Employees":        "员工",
	"Apps":             "应用",
	"Keys":             "密钥",
	"Audit log":        "审计日志",
	"Administrators":   "管理员",
	"Enterprise":       "企业",
	"Switch":           "切换",
	"Sign out":         "退出登录",
	"Signed in as":     "当前登录：",
	"Role":             "角色",
	"owner":            "所有者",
	"admin":            "管理员",
	"auditor":          "审计员",
	"operator":         "平台运维",
	"Language":         "语言",
	"Skip to content":  "跳到正文",
	"Read-only: your role can see but not change.": "只读：你的角色可以查看，不能修改。",
	"Reference:":           "参考编号：",
	"Back to the console":  "返回控制台",
	"Something went wrong": "出错了",
	"Not found":            "找不到",
	"Not allowed":          "无权操作",
	"Service unavailable":  "服务暂时不可用",
	"There is nothing here, or you hold no administrator role in this enterprise.":     "这里没有内容，或你在这个企业没有管理员角色。",
	"Your role does not allow this.":                                                   "你的角色不允许这个操作。",
	"The page expired; please try again.":                                              "页面已过期，请重试。",
	"The service is unavailable; try again shortly.":                                   "服务暂时不可用，请稍后再试。",
	"You hold no administrator role in any enterprise. Ask an owner to grant you one.": "你在任何企业都没有管理员角色。请联系所有者为你授权。",
	"Check the fields marked below.":                                                   "请检查下面标出的字段。",
	"Saved.":                                                                           "已保存。",
	"Done.":                                                                            "已完成。",

	// common
	"Name":        "名称",
	"ID":          "ID",
	"Kind":        "类型",
	"Status":      "状态",
	"Actions":     "操作",
	"Save":        "保存",
	"Cancel":      "取消",
	"Create":      "创建",
	"Edit":        "编辑",
	"Delete":      "删除",
	"Copy":        "复制",
	"Copied":      "已复制",
	"Yes":         "是",
	"No":          "否",
	"None":        "无",
	"Open":        "开启",
	"Close":       "关闭",
	"open":        "开启",
	"closed":      "已关闭",
	"Description": "描述",
	"Details":     "详情",
	"Filter":      "筛选",
	"Next page":   "下一页",
	"All":         "全部",
	"Search":      "搜索",
	"Created":     "创建时间",
	"Updated":     "更新时间",
	"File-managed: change it in the config file.": "由配置文件管理：请在配置文件中修改。",

	// source kinds
	"WeCom":            "企业微信",
	"DingTalk":         "钉钉",
	"Custom directory": "自定义目录",
	"wecom":            "企业微信",
	"dingtalk":         "钉钉",
	"local":            "自定义目录",

	// sources list
	"New identity source":      "新建身份源",
	"No identity sources yet.": "还没有身份源。",
	"Auto sync":                "自动同步",
	"Last sync":                "最近同步",
	"Synchronize now":          "立即同步",
	"Sync records":             "同步记录",
	"Turn on":                  "开启",
	"Turn off":                 "关闭",
	"on":                       "开",
	"off":                      "关",
	"never":                    "从未",

	// source create/edit
	"Create a WeCom source":     "创建企业微信身份源",
	"Create a DingTalk source":  "创建钉钉身份源",
	"Create a custom directory": "创建自定义目录",
	"Choose the kind of source": "选择身份源类型",
	"Source ID":                 "身份源 ID",
	"Lowercase letters, digits, - and _; it appears in the callback URLs.": "小写字母、数字、- 和 _；会出现在回调地址中。",
	"Corp ID":                    "企业 ID（CorpId）",
	"Agent ID":                   "应用 AgentId",
	"Secret":                     "Secret",
	"Contact sync secret":        "通讯录同步 Secret",
	"Login mode":                 "登录方式",
	"QR code (wwlogin)":          "扫码登录（wwlogin）",
	"QR code (legacy qrConnect)": "扫码登录（旧版 qrConnect）",
	"Callback domain":            "回调域名",
	"Event token":                "事件 Token",
	"Event EncodingAESKey":       "事件 EncodingAESKey",
	"Edition":                    "版本",
	"Standard":                   "标准版",
	"Dedicated":                  "专属版",
	"AppKey":                     "AppKey",
	"AppSecret":                  "AppSecret",
	"Event aes_key":              "事件 aes_key",
	"Event token (DingTalk)":     "事件 token",
	"API base URL":               "API 地址",
	"Login base URL":             "登录地址",
	"OAPI base URL":              "OAPI 地址",
	"Open base URL":              "Open 地址",
	"OAuth base URL":             "OAuth 地址",
	"Advanced: platform addresses (private deployments and simulators)": "高级：平台地址（私有部署与模拟器）",
	"Leave a secret as shown to keep it; type a new one to replace it.": "保留显示的掩码即不修改密钥；输入新值即替换。",
	"Authoritative: a person it removes departs entirely":               "权威源：从此源移除的人员将整体离职",
	"Edit identity source": "编辑身份源",

	// sync settings
	"Sync settings":                                   "同步设置",
	"Synchronize user information":                    "同步用户信息",
	"Cycle (hours, 1–24)":                             "同步周期（小时，1–24）",
	"Daily verification time (HH:MM, empty for none)": "每日校验时间（HH:MM，留空为不校验）",
	"Scope":              "同步范围",
	"Whole organisation": "全部组织",
	"Chosen departments": "指定部门",
	"Upstream department IDs, one per line (empty: the whole organisation)": "上游部门 ID，每行一个（留空为全部组织）",
	"Choose from the platform's tree":                                       "从平台的部门树中选择",
	"Match rule":                                                            "匹配规则",
	"by user ID":                                                            "按用户 ID",
	"by email":                                                              "按邮箱",
	"by mobile":                                                             "按手机号",
	"Deletion protection: users":                                            "删除保护：用户数",
	"Deletion protection: departments":                                      "删除保护：部门数",
	"Field mappings (upstream=local, one per line; local is name, email, mobile or ext.NAME)": "字段映射（上游=本地，每行一个；本地为 name、email、mobile 或 ext.名称）",
	"Extended fields (one per line)": "扩展字段（每行一个）",

	// source page
	"Values to paste into the platform's console": "需要填到平台管理后台的值",
	"Trusted / callback domain":                   "可信域名 / 回调域名",
	"Login callback URL":                          "登录回调地址",
	"Event request URL":                           "事件接收地址（URL）",
	"Application homepage URL":                    "应用主页地址",
	"Domain verification file URL":                "域名校验文件地址",
	"Problem":                                     "问题",
	"Test connectivity":                           "测试连通性",
	"Connectivity":                                "连通性",
	"All checks passed.":                          "全部检查通过。",
	"Some checks failed: fix what they say, then test again.": "部分检查未通过：按提示修复后再测试。",
	"Check":                "检查项",
	"Result":               "结果",
	"Fix":                  "修复方法",
	"ok":                   "通过",
	"warn":                 "警告",
	"fail":                 "失败",
	"credentials":          "凭据",
	"egress_ip":            "出口 IP",
	"read_mode":            "读取方式",
	"login_settings":       "登录设置",
	"event_callback":       "事件回调",
	"domain_verification":  "域名校验",
	"Close source":         "关闭身份源",
	"Open source":          "开启身份源",
	"Delete source":        "删除身份源",
	"Settings":             "设置",
	"Deleting this source": "删除这个身份源",
	"Departments removed":  "将删除的部门",
	"Links removed":        "将删除的关联",
	"People who depart":    "将离职的人员",
	"People who stay (linked by other sources)":           "保留的人员（由其他身份源关联）",
	"Refresh tokens ended":                                "将结束的刷新令牌",
	"Sessions ended":                                      "将结束的会话",
	"Deletion protection":                                 "删除保护",
	"Delete anyway (past deletion protection)":            "仍然删除（越过删除保护）",
	"Delete it":                                           "确认删除",
	"The source is deleted.":                              "身份源已删除。",
	"The source is closed: nobody can log on through it.": "身份源已关闭：无法通过它登录。",
	"The source is open.":                                 "身份源已开启。",
	"Synchronization started.":                            "已开始同步。",

	// sync
	"Sync tasks":    "同步任务",
	"Task":          "任务",
	"Trigger":       "触发方式",
	"Started":       "开始时间",
	"Duration":      "耗时",
	"Counts":        "数量",
	"manual":        "手动",
	"schedule":      "定时",
	"verification":  "校验",
	"event":         "事件",
	"consent":       "授权",
	"running":       "进行中",
	"succeeded":     "成功",
	"failed":        "失败",
	"cancelled":     "已取消",
	"No tasks yet.": "还没有同步任务。",
	"Reason":        "原因",
	"Running… this page updates by itself.": "进行中……本页会自动更新。",
	"Elapsed":                         "已用时",
	"Records":                         "同步对象",
	"Action":                          "动作",
	"Object":                          "对象",
	"Upstream ID":                     "上游 ID",
	"create":                          "新增",
	"update":                          "更新",
	"move":                            "移动",
	"delete":                          "删除",
	"unchanged":                       "未变",
	"skip":                            "跳过",
	"error":                           "错误",
	"user":                            "用户",
	"department":                      "部门",
	"No records.":                     "没有记录。",
	"Upstream (third-party) data":     "第三方数据",
	"Local before":                    "本地（同步前）",
	"Local after":                     "本地（同步后）",
	"Changed fields are highlighted.": "有变化的字段已高亮。",
	"Field":                           "字段",
	"Value":                           "值",
	"Record":                          "对象详情",
	"Error":                           "错误",

	// people
	"Departments":                     "部门",
	"Name, username, email or mobile": "姓名、用户名、邮箱或手机号",
	"Username":                        "用户名",
	"Email":                           "邮箱",
	"Mobile":                          "手机号",
	"Nobody found.":                   "没有找到人员。",
	"active":                          "在职",
	"disabled":                        "已停用",
	"inactive":                        "未激活",
	"departed":                        "已离职",
	"Locked":                          "已锁定",
	"End all sessions":                "结束全部会话",
	"Enable":                          "启用",
	"Disable":                         "停用",
	"Unlock":                          "解锁",
	"Links":                           "关联",
	"Sessions":                        "会话",
	"Recent logons":                   "最近登录",
	"Time":                            "时间",

	// audit
	"Person": "人员",
	"Actor":  "操作人",

	// administrators
	"Granted by":   "授权人",
	"Revoke":       "撤销",
	"Grant a role": "授予角色",
	"Grant":        "授予",

	// overview
	"Sources":            "身份源",
	"Last event":         "最近事件",
	"Problems":           "问题",
	"No problems known.": "没有已知问题。",
}
