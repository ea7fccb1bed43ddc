package pages

import (
	"net/http"
	"strings"
)

// Text is the wording of the pages' fixed parts in one language.
type Text struct {
	Lang, SignIn, EnterpriseID, EnterpriseHelp, Continue, ChooseSource, OtherEnterprise, Username, Password, Back,
	ForAdmins, Reference, TryAgain, SignedIn, SignOut, SignedOut, Cancel, GoBack, Home, Intro, YourApps, NoApps, SignedInAs,
	Version string
}

var texts = map[string]*Text{
	"zh-CN": {Lang: "zh-CN", SignIn: "登录", EnterpriseID: "企业 ID", EnterpriseHelp: "向管理员索取企业 ID，例如 demo。",
		Continue: "继续", ChooseSource: "选择登录方式", OtherEnterprise: "换一个企业", Username: "用户名", Password: "密码", Back: "返回",
		ForAdmins: "管理员请注意：", Reference: "参考编号：", TryAgain: "重新登录", SignedIn: "已登录", SignOut: "退出登录", SignedOut: "已退出登录",
		Cancel: "取消", GoBack: "返回", Home: "回到首页", Intro: "qiao 把企业微信、钉钉的企业账号带到你的应用。输入企业 ID 登录。",
		YourApps: "你的应用", NoApps: "还没有可以从这里打开的应用。", SignedInAs: "当前登录：", Version: "版本"},
	"en": {Lang: "en", SignIn: "Sign in", EnterpriseID: "Enterprise ID", EnterpriseHelp: "Ask your administrator for your enterprise ID, for example demo.",
		Continue: "Continue", ChooseSource: "Choose how to sign in", OtherEnterprise: "Use another enterprise", Username: "Username", Password: "Password",
		Back: "Back", ForAdmins: "For administrators:", Reference: "Reference:", TryAgain: "Sign in again", SignedIn: "Signed in",
		SignOut: "Sign out", SignedOut: "Signed out", Cancel: "Cancel", GoBack: "Go back", Home: "Go to the start page",
		Intro:    "qiao brings your WeCom or DingTalk work account to your apps. Enter your enterprise ID to sign in.",
		YourApps: "Your apps", NoApps: "There are no apps to open from here yet.", SignedInAs: "Signed in as", Version: "Version"},
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

// T2 is a Text2 from a Chinese and an English text, each standing in for the other when empty.
func T2(zh, en string) Text2 {
	if zh == "" {
		zh = en
	}
	if en == "" {
		en = zh
	}
	return Text2{zh, en}
}

// WantsPage reports whether the request is a browser's navigation, which must end on a page,
// rather than an API call, which keeps its JSON: the Accept header names HTML (browsers send
// text/html first on navigation; API clients send application/json or */*).
func WantsPage(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		switch strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0])) {
		case "text/html", "application/xhtml+xml":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

// In is the text in t's language.
func (m Text2) In(t *Text) string {
	if t.Lang == "en" {
		return m[1]
	}
	return m[0]
}
