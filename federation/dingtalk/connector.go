package dingtalk

import (
	"context"
	"fmt"
	"strings"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/upstream"
)

// Name is the source kind of DingTalk.
const Name = "dingtalk"

// Kind is DingTalk's entry in the federation registry (linked by federation/connectors).
func Kind() federation.Kind {
	return federation.Kind{
		Name:  Name,
		Parse: parse,
		// The DingTalk app's web view says so in its User-Agent ("DingTalk/7.0.40").
		InApp: func(ua string) bool { return strings.Contains(ua, "DingTalk") },
	}
}

// Config is a DingTalk source's typed configuration: what its config and secrets maps say, with
// the defaults filled in. It is the source's federation.Connector.
type Config struct {
	Settings
	// CallbackDomain is the host the app allows redirects to (config callback_domain).
	CallbackDomain string
	// CallbackToken and AESKey (secrets callback_token, aes_key) verify and decrypt event pushes;
	// only the decoder needs them. EventReceiveKey (config event_receive_key) is a receive key
	// to accept besides the AppKey and the CorpId.
	CallbackToken   string
	AESKey          string
	EventReceiveKey string
	// Events (config events) is how DingTalk delivers events: EventsHTTP (the default: pushes to
	// the callback URL) or EventsStream (the gateway holds a Stream connection; stream.go).
	Events string
}

var _ federation.Connector = (*Config)(nil)

// ParseConfig reads a source's config and secrets maps. It fails only on a value it cannot read
// (rate_limit); Validate checks the rest.
func ParseConfig(cfg, secrets map[string]string) (*Config, error) {
	c := &Config{Settings: settingsFrom(cfg, secrets), CallbackDomain: cfg["callback_domain"],
		CallbackToken: secrets["callback_token"], AESKey: secrets["aes_key"], EventReceiveKey: cfg["event_receive_key"], Events: cfg["events"]}
	if c.Events == "" {
		c.Events = EventsHTTP
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

// Validate checks what every capability needs: the app's key and secret, and the event mode.
func (c *Config) Validate() error {
	if c.Events != "" && c.Events != EventsHTTP && c.Events != EventsStream {
		return &federation.SettingError{Key: "config.events", Reason: fmt.Sprintf("%q must be http (pushes to the callback URL) or stream (a Stream connection)", c.Events)}
	}
	return c.validate()
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

// Login opens the login: the QR or account page in a browser; inside DingTalk, a page of qiao's
// gets a free-login code from the app (federation.InAppPage).
func (c *Config) Login() (federation.Login, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return &login{c: cl, domain: c.CallbackDomain}, nil
}

// Decoder opens the event push decoder, accepting the configured receive key, the AppKey (app
// subscriptions) and the CorpId (API subscriptions).
func (c *Config) Decoder() (federation.CallbackDecoder, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newDecoder(c.CallbackToken, c.AESKey, c.EventReceiveKey, c.AppKey, c.CorpID)
}

// login is a source's federation.Login.
type login struct {
	c      *Client
	domain string
}

var _ federation.InAppPage = (*login)(nil)

func (l *login) AuthURL(redirectURI, state, _ string, _ bool) (string, error) {
	return l.c.AuthURL(redirectURI, state), nil
}

func (l *login) Exchange(ctx context.Context, code string, inApp bool) (*federation.Identity, error) {
	if inApp {
		return l.c.ExchangeInApp(ctx, code)
	}
	return l.c.Exchange(ctx, code)
}

func (l *login) CallbackDomain() string { return l.domain }

// InAppPage names the organisation and the app whose free-login code the page asks for.
func (l *login) InAppPage() (corpID, clientID string) { return l.c.s.CorpID, l.c.s.AppKey }
