// Package connectors is the registry of platform kinds: it opens the connector of a source from
// its kind, config and secrets.
package connectors

import (
	"fmt"
	"strconv"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk"
	"github.com/qiao-gateway/qiao/federation/wecom"
)

// Kinds lists the platforms with a connector.
var Kinds = []string{"wecom", "dingtalk"}

// rate reads config "rate_limit": empty = the platform's published limit, "off" = none (for
// simulators with limits off in benchmarks), or calls per second per API.
func rate(cfg map[string]string) (float64, error) {
	switch v := cfg["rate_limit"]; v {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("config.rate_limit %q must be off or calls per second", v)
		}
		return f, nil
	}
}

// Reader opens the directory reader of a source.
func Reader(kind string, cfg, secrets map[string]string) (federation.DirectoryReader, error) {
	r, err := rate(cfg)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "wecom":
		s, err := wecom.SettingsFrom(cfg, secrets)
		if err != nil {
			return nil, err
		}
		s.RatePerSecond = r
		c, err := wecom.NewClient(s)
		if err != nil {
			return nil, err
		}
		return c.Reader(), nil
	case "dingtalk":
		s, err := dingtalk.SettingsFrom(cfg, secrets)
		if err != nil {
			return nil, err
		}
		s.RatePerSecond = r
		c, err := dingtalk.NewClient(s)
		if err != nil {
			return nil, err
		}
		return c.Reader(), nil
	}
	return nil, fmt.Errorf("no connector for kind %q", kind)
}

// Decoder opens the callback decoder of a source.
func Decoder(kind string, cfg, secrets map[string]string) (federation.CallbackDecoder, error) {
	switch kind {
	case "wecom":
		return wecom.NewDecoder(cfg, secrets)
	case "dingtalk":
		return dingtalk.NewDecoder(cfg, secrets)
	}
	return nil, fmt.Errorf("no event callbacks for kind %q", kind)
}
