package gateway

import "github.com/qiao-gateway/qiao/console"

// mountConsole serves the admin console at /console/, on top of the admin API (mountAdminAPI
// first): the console's reads and changes are the API's, made with the browser's session.
func (g *Gateway) mountConsole() {
	c := &console.Console{API: g.Admin.Handler(), Pages: g.Broker.Pages, ExternalURL: g.Config.ExternalURL, Log: g.Log}
	if err := c.Init(); err != nil {
		// The templates are embedded: this is a broken build, which the tests catch.
		g.Log.Error("admin console not served", "err", err)
		return
	}
	g.Mux.Handle(console.Prefix+"/", c.Handler())
}
