package gateway

import (
	"context"
	"reflect"
	"strings"

	"github.com/qiao-gateway/qiao/declare"
	"github.com/qiao-gateway/qiao/internal/config"
)

// Reload applies a configuration loaded (and so validated) again to the running gateway, as qiao
// serve does on SIGHUP: the enterprises it declares — sources, clients, service providers, local
// users — are written into the store as at start, all or nothing, with what the file no longer
// declares closed or deleted under the same rules (force as serve was started with). The other
// settings (listen, storage, state, keys, session lengths, …) are read at start only: Reload
// returns the keys of those that differ, for the operator to restart, and leaves them as they are.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config, force bool) (res *declare.Result, needRestart []string, err error) {
	res, err = applyDeclared(ctx, g.Store, cfg, g.Log, declare.Options{Force: force, ForceHint: "qiao serve --force (or qiao apply --force)"})
	if err != nil {
		return nil, nil, err
	}
	// A change that ends access (a source closed, an app disabled) queued its job: run it now.
	select {
	case g.AccessNotify <- struct{}{}:
	default:
	}
	g.reportCallbackDomains(ctx)
	return res, restartKeys(g.Config, cfg), nil
}

// restartKeys names the settings, other than the enterprises, whose values differ between the
// running configuration and cfg (by key, never by value: master_key is one of them).
func restartKeys(running, cfg *config.Config) []string {
	var keys []string
	a, b := reflect.ValueOf(running).Elem(), reflect.ValueOf(cfg).Elem()
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" || name == "enterprises" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			keys = append(keys, name)
		}
	}
	return keys
}
