package dingtalksim

import (
	"fmt"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// Setup is a ready-made simulator configuration, reproducible from a seed: what `qiao sim
// dingtalk` and `qiao demo` run.
type Setup struct {
	CorpID, AppKey, AppSecret, CallbackToken, CallbackAESKey string
	AgentID                                                  int
	Config                                                   Config
}

// NewSetup builds an org of users people (from seed) and credentials derived from seed; the app's
// redirect URL is on redirectDomain (host:port).
func NewSetup(users int, seed uint64, redirectDomain string) *Setup {
	s := &Setup{
		CorpID:         "ding" + simkit.DeriveHex(seed, "dingtalk-corp", 16),
		AppKey:         "ding" + simkit.Derive(seed, "dingtalk-appkey", 16),
		AppSecret:      simkit.Derive(seed, "dingtalk-appsecret", 64),
		CallbackToken:  simkit.Derive(seed, "dingtalk-callback-token", 16),
		CallbackAESKey: simkit.Derive(seed, "dingtalk-aes-key", 43),
		AgentID:        3000001,
	}
	s.Config = Config{CorpID: s.CorpID, CallbackToken: s.CallbackToken, CallbackAESKey: s.CallbackAESKey, RateLimits: true,
		Org: simorg.Generate("桥示范科技", users, seed),
		Apps: []App{{AgentID: s.AgentID, Name: "qiao SSO", AppKey: s.AppKey, AppSecret: s.AppSecret, RedirectDomain: redirectDomain,
			MobilePerm: true, EmailPerm: true}}}
	return s
}

// Describe is the text `qiao sim dingtalk` prints.
func (s *Setup) Describe(base string) string {
	d, u := s.Config.Org.Counts()
	return fmt.Sprintf(`DingTalk simulator on %[1]s  (%[2]d departments, %[3]d users, zhangsan = 张三)
  oapi base URL       %[1]s/   (stands for https://oapi.dingtalk.com)
  new API base URL    %[1]s/v1.0/   (stands for https://api.dingtalk.com)
  login               %[1]s/oauth2/auth?response_type=code&client_id=%[5]s&scope=openid&prompt=consent&redirect_uri=...&state=...
  corp ID             %[4]s
  app key (client_id) %[5]s
  app secret          %[6]s
  agent ID            %[7]d
  callback token      %[8]s
  aes_key             %[9]s
  event receive key   %[5]s (the AppKey: an app-level subscription)
  redirect domain     %[10]s
  control API         %[1]s/_sim/  (users, departments, faults, tokens/expire, ratelimits, calls, callback, events, jsapi/code)
`, base, d, u, s.CorpID, s.AppKey, s.AppSecret, s.AgentID, s.CallbackToken, s.CallbackAESKey, s.Config.Apps[0].RedirectDomain)
}
