package demo

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/qiao-gateway/qiao/federation/dingtalk/dingtalksim"
	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/password"
)

// Credentials are what `qiao demo` prints for a person to use.
type Credentials struct {
	Username          string
	Password          string
	DemoAppSecret     string
	DemoServiceSecret string
}

func randomSecret() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sims are the simulators the demo's WeCom and DingTalk sources point at.
type Sims struct {
	WeCom       *wecomsim.Setup
	WeComURL    string
	DingTalk    *dingtalksim.Setup
	DingTalkURL string
}

// Config returns the configuration of the demo: enterprise "demo" with its own directory
// (source "local", user zhangsan), sources "wecom" and "dingtalk" on the simulators (when sims is
// not nil) and the clients sase-client, demo-app and demo-service. Secrets are fresh each run
// unless pw is given.
func Config(addr, dataDir, pw string, sims *Sims) (*config.Config, *Credentials, error) {
	cfg := config.Default()
	cfg.Listen = addr
	cfg.DataDir = dataDir
	cfg.Log.Format = "text"
	cfg.Log.Level = "warn"
	if pw == "" {
		pw = randomSecret()[:12]
	}
	creds := &Credentials{Username: "zhangsan", Password: pw, DemoAppSecret: randomSecret(), DemoServiceSecret: randomSecret()}
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return nil, nil, err
	}
	ext := "http://" + addr
	cfg.Enterprises = []config.Enterprise{{
		ID:      "demo",
		Name:    "Demo Corp 演示企业",
		Sources: demoSources(addr, sims),
		Users: []config.User{
			{Username: "zhangsan", Name: "张三", Email: "zhangsan@demo.example", Mobile: "13800000001", PasswordHash: hash},
			// 李四 is only in the local directory: provisioning pushes her into the WeCom org.
			{Username: "lisi", Name: "李四", Email: "lisi@demo.example", Mobile: "13900000002"},
		},
		Provisioning: demoProvisioning(sims),
		// 张三 owns the demo enterprise in the admin API (/api/v1): sign in, then call it with the session.
		Admins: []config.Admin{{User: "zhangsan", Role: "owner"}},
		Clients: []config.Client{
			// RFC 8252: the SASE client listens on a loopback port of its choosing; any port matches.
			{ID: "sase-client", Name: "SASE client", Type: "native", RedirectURIs: []string{"http://127.0.0.1/callback"},
				PostLogoutRedirectURIs: []string{"http://127.0.0.1/logged-out"}, GrantTypes: []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}},
			{ID: "demo-app", Name: "Demo web app", Type: "web", Secret: creds.DemoAppSecret,
				RedirectURIs: []string{ext + "/demo-app/callback"}, PostLogoutRedirectURIs: []string{ext + "/demo-app/"},
				LaunchURL: ext + "/demo-app/login"},
			{ID: "demo-service", Name: "Demo service", Type: "service", Secret: creds.DemoServiceSecret},
		},
		// The sample SAML SP `qiao demo` serves; its metadata is fetched from its URL on first use.
		ServiceProviders: []config.ServiceProvider{
			{EntityID: ext + "/demo-sp/metadata", Name: "Demo SAML app", MetadataURL: ext + "/demo-sp/metadata"},
		},
	}}
	cfg.Storage = "sqlite://" + filepath.Join(dataDir, "qiao.db")
	cfg.KeysDir = filepath.Join(dataDir, "keys")
	cfg.ExternalURL = ext
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("demo config: %w", err)
	}
	return cfg, creds, nil
}

// demoProvisioning pushes the local directory into the WeCom simulator's org, under its root
// department; people who came from WeCom (the wecom source, same corp) are never pushed back.
func demoProvisioning(sims *Sims) *config.Provisioning {
	if sims == nil {
		return nil
	}
	return &config.Provisioning{Kind: "wecom", CorpID: sims.WeCom.CorpID, APIBaseURL: sims.WeComURL, RootDepartment: "1",
		Scope: "sources", Sources: []string{"local"}, Secrets: map[string]string{"contact_secret": sims.WeCom.ContactSecret}}
}

func demoSources(addr string, sims *Sims) []config.Source {
	// description is the Chinese title, config.description_en the English one; the password comes
	// last on the chooser (no config.order: platform sources first).
	out := []config.Source{{ID: "local", Kind: "local", Name: "本地账号", Description: "使用演示密码登录",
		Config: map[string]string{"description_en": "Sign in with the demo password"}}}
	if sims == nil {
		return out
	}
	w, d := sims.WeCom, sims.DingTalk
	out = append(out,
		config.Source{ID: "wecom", Kind: "wecom", Name: "企业微信", Description: "企业微信扫码登录（模拟器）",
			Config: map[string]string{"description_en": "Scan with WeCom (simulator)", "corp_id": w.CorpID, "agent_id": strconv.Itoa(w.AgentID), "api_base_url": sims.WeComURL,
				"login_base_url": sims.WeComURL, "open_base_url": sims.WeComURL, "oauth_base_url": sims.WeComURL, "callback_domain": addr},
			Secrets: map[string]string{"secret": w.Secret, "contact_secret": w.ContactSecret, "callback_token": w.CallbackToken,
				"encoding_aes_key": w.CallbackAESKey}},
		config.Source{ID: "dingtalk", Kind: "dingtalk", Name: "钉钉", Description: "钉钉扫码登录（模拟器）",
			Config: map[string]string{"description_en": "Scan with DingTalk (simulator)", "corp_id": d.CorpID, "app_key": d.AppKey, "agent_id": strconv.Itoa(d.AgentID),
				"api_base_url": sims.DingTalkURL, "oapi_base_url": sims.DingTalkURL, "login_base_url": sims.DingTalkURL, "callback_domain": addr},
			Secrets: map[string]string{"app_secret": d.AppSecret, "callback_token": d.CallbackToken, "aes_key": d.CallbackAESKey}},
	)
	return out
}
