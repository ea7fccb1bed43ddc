package adminapi

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/pages"
)

// setupPage is the operator setup link followed in a browser: the same steps as the API
// operation, answered with pages (log on first; welcome; or why the link no longer works).
func (a *API) setupPage(w http.ResponseWriter, r *http.Request, p *principal) {
	token := r.URL.Query().Get("token")
	if len(token) > 128 {
		token = ""
	}
	if p == nil || p.kind != "user" {
		back := Prefix + "/operator-setup?" + url.Values{"token": {token}}.Encode()
		http.Redirect(w, r, "/login?"+url.Values{"return": {back}}.Encode(), http.StatusSeeOther)
		return
	}
	var op error = errors.New("no token")
	if token != "" {
		_, op = a.takeSetup(r.Context(), p, token)
	}
	var se huma.StatusError
	switch {
	case op == nil:
		a.Pages.Message(w, r, http.StatusOK, pages.T2("你已成为平台运营者", "You are now a platform operator"),
			pages.T2("“"+p.name+"”（企业 "+p.enterprise+"）现在可以管理所有企业：创建和删除企业、配置身份源、应用与密钥。这个设置链接已失效。",
				p.name+" of enterprise "+p.enterprise+" may now administer every enterprise: create and delete enterprises, configure identity sources, apps and keys. This setup link no longer works."),
			nil, "/console/", pages.T2("打开管理控制台", "Open the console"))
	case errors.As(op, &se) && se.GetStatus() == http.StatusServiceUnavailable:
		a.Pages.StoreUnavailable(w, r)
	default:
		a.Pages.MessageDetail(w, r, http.StatusGone, pages.T2("设置链接无效", "This setup link does not work"),
			pages.T2("这个链接不存在、已经用过或已过期。", "This link is unknown, already used or expired."),
			pages.T2("在服务器上运行 qiao admins bootstrap 获取新的链接。", "Run qiao admins bootstrap on the server for a new link."),
			nil, "", pages.Text2{})
	}
}
