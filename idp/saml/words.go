package saml

import (
	"regexp"

	"github.com/qiao-gateway/qiao/pages"
)

// The Chinese of every public reason a SAML request is refused with (requestError.Public and the
// reasons given to refuse), so a Chinese page says what happened in Chinese. A reason without a
// translation (TestEveryRefusalHasChinese keeps that from happening) shows a general sentence on
// Chinese pages; the English reason is still in the log line the reference ID finds.
var zhReasons = map[string]string{
	"AssertionConsumerServiceIndex is not in the app's metadata":                                                     "AssertionConsumerServiceIndex 不在应用的元数据中",
	"AssertionConsumerServiceIndex names an endpoint that does not take HTTP-POST, the only binding qiao answers on": "AssertionConsumerServiceIndex 指向的端点不接受 HTTP-POST，而 qiao 只用 HTTP-POST 应答",
	"AssertionConsumerServiceURL is not an HTTP-POST endpoint in the app's metadata":                                 "AssertionConsumerServiceURL 不是应用元数据中的 HTTP-POST 端点",
	"Destination is not this IdP's SSO URL":                                                                          "Destination 不是本 IdP 的 SSO 地址",
	"Destination is not this IdP's logout URL":                                                                       "Destination 不是本 IdP 的退出地址",
	"IssueInstant is in the future":                                                                                  "IssueInstant 是将来的时间",
	"IssueInstant is too old or in the future":                                                                       "IssueInstant 太旧或是将来的时间",
	"RelayState longer than 1024 bytes":                                                                              "RelayState 超过 1024 字节",
	"Signature and SigAlg must be given together":                                                                    "Signature 和 SigAlg 必须同时给出",
	"a parameter name is encoded or malformed (parameter names must be sent as they are)":                            "有参数名经过编码或格式错误（参数名必须原样发送）",
	"an AuthnRequest comes as SAMLRequest":                                                                           "AuthnRequest 应以 SAMLRequest 参数发送",
	"both SAMLRequest and SAMLResponse are given":                                                                    "同时给出了 SAMLRequest 和 SAMLResponse",
	"cannot answer the passive request":                                                                              "无法应答这个被动（IsPassive）请求",
	"cannot sign the LogoutResponse":                                                                                 "无法签名 LogoutResponse",
	"method not allowed":                                                                                             "不允许这种请求方法",
	"no SAMLRequest or SAMLResponse":                                                                                 "没有 SAMLRequest 或 SAMLResponse",
	"the AuthnRequest is not valid":                                                                                  "AuthnRequest 无效",
	"the LogoutResponse does not answer the LogoutRequest sent":                                                      "LogoutResponse 不是对所发 LogoutRequest 的应答",
	"the LogoutResponse has no Issuer":                                                                               "LogoutResponse 没有 Issuer",
	"the Signature parameter is not base64":                                                                          "Signature 参数不是 base64",
	"the app asks for its response on a binding other than HTTP-POST, the only one qiao answers on":                  "应用要求用 HTTP-POST 以外的绑定应答，而 qiao 只用 HTTP-POST 应答",
	"the app's metadata has no HTTP-POST assertion consumer service":                                                 "应用的元数据中没有 HTTP-POST 的断言消费服务（ACS）",
	"the form cannot be read (at most 512 KiB)":                                                                      "无法读取表单（最多 512 KiB）",
	"the form must be sent as application/x-www-form-urlencoded":                                                     "表单必须以 application/x-www-form-urlencoded 发送",
	"the message is not XML":                                                                                         "消息不是 XML",
	"the message is signed, and the service provider's metadata has no signing certificate":                          "消息带有签名，但服务提供方的元数据中没有签名证书",
	"the message is unsigned, and this service provider's must be signed":                                            "消息没有签名，而这个服务提供方的消息必须签名",
	"the message's signature does not verify with the service provider's certificates":                               "消息的签名无法用服务提供方的证书验证",
	"the message's signature does not verify":                                                                        "消息的签名验证失败",
	"the request has expired (IssueInstant is too old)":                                                              "请求已过期（IssueInstant 太旧）",
	"the request could not be handled":                                                                               "无法处理这个请求",
	"the service provider's logout URL is not a URL":                                                                 "服务提供方的退出地址不是有效的 URL",
	"the service provider's metadata cannot be read right now":                                                       "暂时无法读取服务提供方的元数据",
	"the service provider's metadata has no SPSSODescriptor":                                                         "服务提供方的元数据中没有 SPSSODescriptor",
	"the sign-in did not complete":                                                                                   "登录没有完成",
	"the signature algorithm is not accepted (RSA-SHA256 or RSA-SHA512)":                                             "不接受这种签名算法（只接受 RSA-SHA256 或 RSA-SHA512）",
	"the signing key is not available":                                                                               "签名密钥不可用",
	"the state store is unavailable":                                                                                 "状态存储不可用",
	"this AuthnRequest was already used":                                                                             "这个 AuthnRequest 已经用过",
	"this LogoutRequest was already used":                                                                            "这个 LogoutRequest 已经用过",
	"this service provider is disabled by the administrator":                                                         "这个服务提供方已被管理员停用",
	"unknown service provider":                                                                                       "未登记的服务提供方",
	"it does not match this browser's session":                                                                       "它与这个浏览器的会话不符",
	"the session could not be ended":                                                                                 "无法结束会话",
}

// zhPatterns translate the reasons built around a name (a parameter, a message kind, an entity ID).
var zhPatterns = []struct {
	re *regexp.Regexp
	zh string
}{
	{regexp.MustCompile(`^parameter (.+) is given more than once$`), "参数 $1 出现了不止一次"},
	{regexp.MustCompile(`^parameter (.+) is not URL-encoded$`), "参数 $1 没有正确进行 URL 编码"},
	{regexp.MustCompile(`^missing or oversized (.+)$`), "$1 缺失或过大"},
	{regexp.MustCompile(`^the (.+) is not well-formed XML$`), "$1 不是格式正确的 XML"},
	{regexp.MustCompile(`^not a (.+)$`), "不是 $1"},
	{regexp.MustCompile(`^the (.+) has no Issuer \(saml:Issuer, urn:oasis:names:tc:SAML:2.0:assertion\)$`), "$1 没有 Issuer（saml:Issuer，urn:oasis:names:tc:SAML:2.0:assertion）"},
	{regexp.MustCompile(`^the (.+) has no usable ID$`), "$1 没有可用的 ID"},
	{regexp.MustCompile(`^the (.+) is not SAML 2.0$`), "$1 不是 SAML 2.0"},
	{regexp.MustCompile(`^cannot encode the (.+)$`), "无法编码 $1"},
	{regexp.MustCompile(`^cannot sign the (.+)$`), "无法签名 $1"},
	{regexp.MustCompile(`^unknown service provider (.+)$`), "未登记的服务提供方 $1"},
	{regexp.MustCompile(`^this app identifies people by email address, and (.+) has none in the directory$`), "这个应用用邮箱识别用户，而 $1 在通讯录中没有邮箱"},
	{regexp.MustCompile(`^unknown NameID format (.+) configured for (.+)$`), "为 $2 配置的 NameID 格式 $1 无法识别"},
}

// reasonText is a refusal's reason in Chinese and English; ok is false when no Chinese is known.
func reasonText(why string) (pages.Text2, bool) {
	if zh, ok := zhReasons[why]; ok {
		return pages.Text2{zh, why}, true
	}
	for _, p := range zhPatterns {
		if p.re.MatchString(why) {
			return pages.Text2{p.re.ReplaceAllString(why, p.zh), why}, true
		}
	}
	return pages.Text2{"详情已记入日志，请把参考编号告诉管理员", why}, false
}

// reasonZH is the Chinese of a refusal's reason.
func reasonZH(why string) string {
	t, _ := reasonText(why)
	return t[0]
}
