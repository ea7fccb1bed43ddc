package pages

import (
	"net/http"
	"strings"
)

// Text is the wording of the pages' fixed parts in one language.
type Text struct {
	Lang, SignIn, EnterpriseID, EnterpriseHelp, Continue, ChooseSource, OtherEnterprise, Username, Password, Back,
	ForAdmins, Reference, TryAgain, SignedIn, SignOut, SignedOut string
}

var texts = map[string]*Text{
	"zh-CN": {Lang: "zh-CN", SignIn: "登录", EnterpriseID: "企业 ID", EnterpriseHelp: "向管理员索取企业 ID，例如 demo。",
		Continue: "继续", ChooseSource: "选择登录方式", OtherEnterprise: "换一个企业", Username: "用户名", Password: "密码", Back: "返回",
		ForAdmins: "管理员请注意：", Reference: "参考编号：", TryAgain: "重新登录", SignedIn: "已登录", SignOut: "退出登录", SignedOut: "已退出登录"},
	"en": {Lang: "en", SignIn: "Sign in", EnterpriseID: "Enterprise ID", EnterpriseHelp: "Ask your administrator for your enterprise ID, for example demo.",
		Continue: "Continue", ChooseSource: "Choose how to sign in", OtherEnterprise: "Use another enterprise", Username: "Username", Password: "Password",
		Back: "Back", ForAdmins: "For administrators:", Reference: "Reference:", TryAgain: "Sign in again", SignedIn: "Signed in",
		SignOut: "Sign out", SignedOut: "Signed out"},
}

// Lang picks zh-CN or English from ui_locales or Accept-Language (Chinese first by default).
func Lang(r *http.Request) *Text {
	pref := r.URL.Query().Get("ui_locales") + "," + r.Header.Get("Accept-Language")
	for _, part := range strings.FieldsFunc(pref, func(c rune) bool { return c == ',' || c == ' ' }) {
		tag := strings.ToLower(strings.SplitN(part, ";", 2)[0])
		switch {
		case strings.HasPrefix(tag, "zh"):
			return texts["zh-CN"]
		case strings.HasPrefix(tag, "en"):
			return texts["en"]
		}
	}
	return texts["zh-CN"]
}

// Text2 is one piece of page text in Chinese and English.
type Text2 [2]string

// In is the text in t's language.
func (m Text2) In(t *Text) string {
	if t.Lang == "en" {
		return m[1]
	}
	return m[0]
}
