package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"

	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/password"
)

// DemoCredentials are what `qiao demo` prints for a person to use.
type DemoCredentials struct {
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

// DemoConfig returns the configuration of the demo (DESIGN.md "The demo"): enterprise "demo" with
// its own directory (source "local", user zhangsan) and the clients sase-client, demo-app and
// demo-service. Secrets are fresh each run unless pw is given.
func DemoConfig(addr, dataDir, pw string) (*config.Config, *DemoCredentials, error) {
	cfg := config.Default()
	cfg.Listen = addr
	cfg.DataDir = dataDir
	cfg.Log.Format = "text"
	cfg.Log.Level = "warn"
	if pw == "" {
		pw = randomSecret()[:12]
	}
	creds := &DemoCredentials{Username: "zhangsan", Password: pw, DemoAppSecret: randomSecret(), DemoServiceSecret: randomSecret()}
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return nil, nil, err
	}
	ext := "http://" + addr
	cfg.Enterprises = []config.Enterprise{{
		ID:   "demo",
		Name: "Demo Corp 演示企业",
		Sources: []config.Source{
			{ID: "local", Kind: "local", Name: "本地账号", Description: "Log on with a demo password"},
		},
		Users: []config.User{
			{Username: "zhangsan", Name: "张三", Email: "zhangsan@demo.example", Mobile: "13800000001", PasswordHash: hash},
		},
		Clients: []config.Client{
			{ID: "sase-client", Name: "SASE client", Type: "native", RedirectURIs: []string{"http://127.0.0.1/callback"},
				GrantTypes: []string{"authorization_code", "refresh_token"}},
			{ID: "demo-app", Name: "Demo web app", Type: "web", Secret: creds.DemoAppSecret,
				RedirectURIs: []string{ext + "/demo-app/callback"}, PostLogoutRedirectURIs: []string{ext + "/demo-app/"}},
			{ID: "demo-service", Name: "Demo service", Type: "service", Secret: creds.DemoServiceSecret},
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
