package wecomsim

import (
	"fmt"

	"github.com/qiao-gateway/qiao/federation/simkit"
	"github.com/qiao-gateway/qiao/federation/simorg"
)

// Setup is a ready-made simulator configuration, reproducible from a seed: what `qiao sim wecom`
// and `qiao demo` run.
type Setup struct {
	CorpID, Secret, ContactSecret, CallbackToken, CallbackAESKey string
	AgentID                                                      int
	Config                                                       Config
}

// NewSetup builds an org of users people (from seed) and credentials derived from seed. The app's
// trusted domain is trustedDomain (host:port of the gateway's callback).
func NewSetup(users int, seed uint64, trustedDomain string) *Setup {
	s := &Setup{
		CorpID:         "ww" + simkit.DeriveHex(seed, "wecom-corp", 16),
		Secret:         simkit.Derive(seed, "wecom-app-secret", 43),
		ContactSecret:  simkit.Derive(seed, "wecom-contact-secret", 43),
		CallbackToken:  simkit.Derive(seed, "wecom-callback-token", 16),
		CallbackAESKey: simkit.Derive(seed, "wecom-aes-key", 43),
		AgentID:        1000002,
	}
	s.Config = Config{CorpID: s.CorpID, ContactSecret: s.ContactSecret, CallbackToken: s.CallbackToken, CallbackAESKey: s.CallbackAESKey,
		RateLimits: true, Org: simorg.Generate("桥示范科技", users, seed),
		Apps: []App{{AgentID: s.AgentID, Name: "qiao SSO", Secret: s.Secret, TrustedDomain: trustedDomain}}}
	return s
}

// Describe is the text `qiao sim wecom` prints.
func (s *Setup) Describe(base string) string {
	d, u := s.Config.Org.Counts()
	return fmt.Sprintf(`WeCom simulator on %[1]s  (%[2]d departments, %[3]d users, zhangsan = 张三)
  API base URL        %[1]s/cgi-bin/   (stands for https://qyapi.weixin.qq.com)
  QR login (new)      %[1]s/wwlogin/sso/login?login_type=CorpApp&appid=%[4]s&agentid=%[5]d&redirect_uri=...&state=...
  QR login (old)      %[1]s/wwopen/sso/qrConnect?appid=%[4]s&agentid=%[5]d&redirect_uri=...
  in-app OAuth        %[1]s/connect/oauth2/authorize?appid=%[4]s&agentid=%[5]d&response_type=code&scope=snsapi_base&redirect_uri=...
  corp ID             %[4]s
  agent ID            %[5]d
  app secret          %[6]s
  contact-sync secret %[7]s
  callback token      %[8]s
  EncodingAESKey      %[9]s
  trusted domain      %[10]s
  control API         %[1]s/_sim/  (users, departments, faults, tokens/expire, ratelimits, calls, callback, events)
`, base, d, u, s.CorpID, s.AgentID, s.Secret, s.ContactSecret, s.CallbackToken, s.CallbackAESKey, s.Config.Apps[0].TrustedDomain)
}
