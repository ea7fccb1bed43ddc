package gateway

import "github.com/qiao-gateway/qiao/adminapi"

// mountAdminAPI serves the admin API at /api/v1/: people by their SSO session, service clients
// by the OpenID Provider's access tokens.
func (g *Gateway) mountAdminAPI() {
	g.Admin = &adminapi.API{Store: g.Store, State: g.State, Sessions: g.Sessions, Tokens: g.OIDC, Sync: g.Sync, Keys: g.Keys, Access: g.Access,
		AccessNotify: g.AccessNotify, Provision: g.Provision, ExternalURL: g.Config.ExternalURL, ClientIP: g.Broker.ClientIP,
		CheckCallbackDomain: g.Broker.CheckCallbackDomain, Pages: g.Broker.Pages, ClientChanged: g.OIDC.ClientChanged, SAML: g.SAML, Log: g.Log}
	g.Admin.Init()
	g.Mux.Handle(adminapi.Prefix+"/", g.Admin.Handler())
}
