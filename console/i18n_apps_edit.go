package console

// The Chinese of the apps' edit and delete screens (apps_edit.go).
func init() {
	flashes["app-deleted"] = "The app is deleted."
	for k, v := range map[string]string{
		"Edit OIDC client":                                          "编辑 OIDC 客户端",
		"Edit SAML service provider":                                "编辑 SAML 服务提供方",
		"Post-logout redirect URIs (one per line)":                  "登出后重定向 URI（每行一个）",
		"Scopes (separated by spaces)":                              "权限范围（以空格分隔）",
		"opaque":                                                    "不透明令牌",
		"Allowed origins (CORS, one per line)":                      "允许的来源（CORS，每行一个）",
		"Where the portal opens the app; empty: not in the portal.": "门户打开应用的地址；留空则不在门户中显示。",
		"Or upload a new metadata file":                             "或上传新的元数据文件",
		"A file uploaded replaces the metadata URL; a new URL replaces uploaded metadata. Leave both as they are to keep the metadata.": "上传的文件会取代元数据 URL；新的 URL 会取代已上传的元数据。两者都不改则保留现有元数据。",
		"Sign the response":                     "签名响应",
		"Sign the assertion":                    "签名断言",
		"Attributes (one per line: NAME=FIELD)": "属性（每行一个：名称=字段）",
		"FIELD is id, username, name, email, mobile, departments, groups, enterprise or ext.NAME.": "字段为 id、username、name、email、mobile、departments、groups、enterprise 或 ext.名称。",
		"Delete this app":    "删除此应用",
		"What deleting does": "删除的后果",
		"Its refresh tokens are revoked, its access tokens refused, and its requests refused from now on. A client created again with the same ID gets a new secret.": "其刷新令牌被吊销，访问令牌被拒绝，此后它的请求一律被拒绝。以相同 ID 重新创建的客户端会得到新的密钥。",
		"Its logons are refused from now on and its people's SAML sessions are ended.":                                                                                "此后经它的登录一律被拒绝，相关人员的 SAML 会话被结束。",
		"The app is deleted.": "应用已删除。",
	} {
		zhText[k] = v
	}
}
