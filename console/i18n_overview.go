package console

// The Chinese of the overview's logon chart, sessions and per-source event and problems.
func init() {
	for k, v := range map[string]string{
		"Logons in the last 24 hours":        "最近 24 小时登录",
		"successful":                         "成功",
		"Live sessions":                      "在线会话",
		"Logons per hour, the last 24 hours": "最近 24 小时每小时登录数",
		"No logons in the last 24 hours.":    "最近 24 小时没有登录。",
		"none received yet":                  "尚未收到",
		"none":                               "无",
		"connectivity tested":                "连通性测试于",
		"connectivity not tested yet":        "尚未测试连通性",
		"applied":                            "已应用",
		"waiting to apply":                   "待处理",
	} {
		zhText[k] = v
	}
}
