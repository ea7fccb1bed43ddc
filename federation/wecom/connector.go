package wecom

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Name is the source kind of WeCom.
const Name = "wecom"

// Kind is WeCom's entry in the federation registry (linked by federation/connectors).
func Kind() federation.Kind {
	return federation.Kind{
		Name:  Name,
		Parse: parse,
		// The WeCom app's web view says so in its User-Agent ("wxwork/4.1.22").
		InApp: func(ua string) bool { return strings.Contains(ua, "wxwork") },
	}
}

// Config is a WeCom source's typed configuration: what its config and secrets maps say, with the
// defaults filled in. It is the source's federation.Connector.
type Config struct {
	Settings
	// LoginMode is the browser's QR page: LoginQR (config login_mode "qr", the default) or
	// LoginQRLegacy ("qr_legacy").
	LoginMode string
	// InAppDetail (config inapp_detail "true") makes in-app logins ask for the sensitive fields
	// (snsapi_privateinfo: mobile, email, ...).
	InAppDetail bool
	// CallbackDomain is the app's trusted domain (config callback_domain).
	CallbackDomain string
	// DomainVerifyFile and DomainVerifyContent (config domain_verify_file, domain_verify_content)
	// are the ownership file the WeCom console asks to find at the trusted domain's root before it
	// accepts the domain (WW_verify_<random>.txt); the gateway serves it at /{file}.
	DomainVerifyFile    string
	DomainVerifyContent string
	// CallbackToken and EncodingAESKey (secrets callback_token, encoding_aes_key) verify and
	// decrypt event callbacks; only the decoder needs them.
	CallbackToken  string
	EncodingAESKey string
}

var _ federation.Connector = (*Config)(nil)

// ParseConfig reads a source's config and secrets maps. It fails only on a value it cannot read
// (rate_limit); Validate checks the rest.
func ParseConfig(cfg, secrets map[string]string) (*Config, error) {
	c := &Config{Settings: settingsFrom(cfg, secrets), LoginMode: cfg["login_mode"], InAppDetail: cfg["inapp_detail"] == "true",
		CallbackDomain: cfg["callback_domain"], CallbackToken: secrets["callback_token"], EncodingAESKey: secrets["encoding_aes_key"],
		DomainVerifyFile: cfg["domain_verify_file"], DomainVerifyContent: strings.TrimSpace(cfg["domain_verify_content"])}
	if c.LoginMode == "" {
		c.LoginMode = LoginQR
	}
	var err error
	if c.RatePerSecond, err = upstream.ParseRateLimit(cfg["rate_limit"]); err != nil {
		return nil, err
	}
	return c, nil
}

// parse returns a nil interface on error (a nil *Config in a Connector would not be nil).
func parse(cfg, secrets map[string]string) (federation.Connector, error) {
	c, err := ParseConfig(cfg, secrets)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks what every capability needs: the corp, a secret, a known login mode.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.LoginMode != LoginQR && c.LoginMode != LoginQRLegacy {
		return &federation.SettingError{Key: "config.login_mode", Reason: fmt.Sprintf("%q must be qr or qr_legacy", c.LoginMode)}
	}
	switch {
	case c.DomainVerifyFile == "" && c.DomainVerifyContent == "":
	case !IsDomainVerifyFile(c.DomainVerifyFile):
		return &federation.SettingError{Key: "config.domain_verify_file", Reason: fmt.Sprintf("%q must be the file name the WeCom console gives, WW_verify_<letters and digits>.txt", c.DomainVerifyFile)}
	case c.DomainVerifyContent == "" || len(c.DomainVerifyContent) > 256 || strings.ContainsAny(c.DomainVerifyContent, " \t\r\n<>"):
		return &federation.SettingError{Key: "config.domain_verify_content", Reason: "must be the file's content as the WeCom console gives it (one token, at most 256 characters)"}
	}
	return nil
}

var verifyFileRe = regexp.MustCompile(`^WW_verify_[A-Za-z0-9]{1,64}\.txt$`)

// IsDomainVerifyFile reports whether name has the form of WeCom's domain ownership file.
func IsDomainVerifyFile(name string) bool { return verifyFileRe.MatchString(name) }

// DomainVerification is the ownership file to serve at the trusted domain's root, if configured.
func (c *Config) DomainVerification() (file, content string) {
	return c.DomainVerifyFile, c.DomainVerifyContent
}

// client checks the settings before any capability uses them, however the Config was made.
func (c *Config) client() (*Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return NewClient(c.Settings)
}

// Reader opens the directory reader.
func (c *Config) Reader() (federation.DirectoryReader, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return cl.Reader(), nil
}

// Login opens the login: the QR page of LoginMode in a browser, in-app OAuth inside WeCom.
func (c *Config) Login() (federation.Login, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return &login{c: cl, mode: c.LoginMode, detail: c.InAppDetail, domain: c.CallbackDomain}, nil
}

// Decoder opens the event callback decoder; the receive ID is the corp ID.
func (c *Config) Decoder() (federation.CallbackDecoder, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newDecoder(c.CallbackToken, c.EncodingAESKey, c.CorpID)
}

// login is a source's federation.Login.
type login struct {
	c      *Client
	mode   string
	detail bool
	domain string
}

func (l *login) AuthURL(redirectURI, state, lang string, inApp bool) (string, error) {
	mode := l.mode
	if inApp {
		mode = LoginInApp
		if l.detail {
			mode = LoginInAppInfo
		}
	}
	return l.c.AuthURL(mode, redirectURI, state, lang)
}

func (l *login) Exchange(ctx context.Context, code string, inApp bool) (*federation.Identity, error) {
	method := "wecom_qr"
	if inApp {
		method = "wecom_inapp"
	}
	return l.c.Exchange(ctx, code, method)
}

func (l *login) CallbackDomain() string { return l.domain }
