// Package gateway assembles a qiao gateway from its configuration: the durable store, the state
// store, the signing keys and the HTTP routes of every room. cmd/qiao and end-to-end tests build
// gateways through it.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qiao-gateway/qiao/access"
	"github.com/qiao-gateway/qiao/adminapi"
	"github.com/qiao-gateway/qiao/broker"
	"github.com/qiao-gateway/qiao/declare"
	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/directory/dirsync"
	"github.com/qiao-gateway/qiao/directory/lease"
	"github.com/qiao-gateway/qiao/directory/provision"
	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/connectors"
	"github.com/qiao-gateway/qiao/federation/wecom"
	idpoidc "github.com/qiao-gateway/qiao/idp/oidc"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/httpx"
	"github.com/qiao-gateway/qiao/internal/password"
	"github.com/qiao-gateway/qiao/internal/secretbox"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/pages"
	"github.com/qiao-gateway/qiao/session"
	"github.com/qiao-gateway/qiao/static"
	"github.com/qiao-gateway/qiao/templates"
)

// Version is the build's version, set by cmd/qiao.
var Version = "dev"

// StartError is a failure to start, with the one-line fix an operator needs.
type StartError struct {
	Cause error
	Fix   string
}

func (e *StartError) Error() string {
	if e.Fix == "" {
		return e.Cause.Error()
	}
	return e.Cause.Error() + ": " + e.Fix
}

func (e *StartError) Unwrap() error { return e.Cause }

// Gateway is one running qiao.
type Gateway struct {
	bg sync.WaitGroup // background jobs (goBackground)

	Config   *config.Config
	Log      *slog.Logger
	Store    directory.Store
	State    state.Store
	Keys     *keys.Manager
	Box      *secretbox.Box
	Registry *prometheus.Registry
	Mux      *http.ServeMux
	Sync     *dirsync.Engine
	Access   *access.Service
	Sessions *session.Store
	Broker   *broker.Broker
	OIDC     *idpoidc.Provider
	SAML     *idpsaml.Provider
	Admin    *adminapi.API
	pages    *template.Template
	// eventNotify wakes the inbox worker when an event is stored.
	eventNotify chan struct{}
	// AccessNotify wakes the access-job worker after a change made in this process.
	AccessNotify chan struct{}
	handler      http.Handler
	health       health // readyz.go: what the backend watcher last saw

	// Provision pushes enterprises' directories into WeCom (provision.go).
	Provision *provision.Service
}

// Option changes how New builds a gateway.
type Option func(*options)

type options struct{ skipApply, force bool }

// WithoutApply leaves the store's enterprises as they are instead of writing the config's
// declarations into it (qiao sync: only serve and apply change configuration).
func WithoutApply() Option { return func(o *options) { o.skipApply = true } }

// WithForce deletes what the config file no longer declares even past deletion protection
// (qiao serve --force).
func WithForce() Option { return func(o *options) { o.force = true } }

// New opens every backend and builds the routes. On error nothing is left open.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (_ *Gateway, err error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	g := &Gateway{Config: cfg, Log: log, Registry: prometheus.NewRegistry(), Mux: http.NewServeMux(), eventNotify: make(chan struct{}, 1),
		AccessNotify: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	// The state store first: it creates nothing, so a start it stops leaves no master key or
	// database behind.
	if g.State, err = state.Open(cfg.State); err != nil {
		return nil, &StartError{err, "set state to memory or redis://HOST:PORT/DB"}
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := g.State.Ping(pctx); err != nil {
		return nil, &StartError{fmt.Errorf("the state store does not answer: %w", err), "check the state setting and that Redis is running"}
	}
	st, box, err := openStore(ctx, cfg, log, false)
	if err != nil {
		return nil, err
	}
	g.Store, g.Box = st, box
	if g.Keys, err = openKeys(ctx, g.Store, cfg); err != nil { // keys.go: in the database
		return nil, err
	}
	if !o.skipApply {
		if _, err := applyDeclared(ctx, g.Store, cfg, log, declare.Options{Force: o.force, ForceHint: "qiao serve --force"}); err != nil {
			return nil, err
		}
	}
	g.Sessions = &session.Store{State: g.State, CookieName: "qiao_sso", Idle: cfg.SessionIdle.D(), Absolute: cfg.SessionAbsolute.D(),
		Secure: strings.HasPrefix(cfg.ExternalURL, "https://")}
	if testKnobs != "" {
		log.Warn("test-only job timing in effect (a binary built with the qiao_testknobs tag; never use one in production)", "QIAO_TESTKNOBS", testKnobs)
	}
	g.Sync = &dirsync.Engine{Store: g.Store, State: g.State, Log: log, Retention: cfg.SyncRecordRetention.D(),
		LockTTL: jobTimes.SyncLockTTL, CycleUnit: jobTimes.CycleUnit,
		Open: func(ctx context.Context, src *directory.IdentitySource) (federation.DirectoryReader, error) {
			return connectors.Reader(string(src.Kind), src.Config, src.Secrets)
		}}
	if g.pages, err = templates.Parse(); err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	var trusted []*net.IPNet
	for _, c := range cfg.TrustedProxies {
		_, n, _ := net.ParseCIDR(c) // validated by config
		trusted = append(trusted, n)
	}
	rend := &pages.Renderer{Templates: g.pages, Secure: strings.HasPrefix(cfg.ExternalURL, "https://"), Log: log}
	g.Broker = &broker.Broker{Store: g.Store, State: g.State, Sessions: g.Sessions, Pages: rend, ExternalURL: cfg.ExternalURL,
		Log: log, Version: Version, Consent: g.Sync.Consent, ClientIP: httpx.ClientIP(trusted), Passwords: password.NewLimiter(password.DefaultSlots(password.Default), 3*time.Second), OpenLogin: func(src *directory.IdentitySource) (federation.Login, error) {
			return connectors.Login(string(src.Kind), src.Config, src.Secrets)
		}}
	g.OIDC = &idpoidc.Provider{Store: g.Store, State: g.State, Keys: g.Keys, Sessions: g.Sessions, Pages: rend,
		ExternalURL: cfg.ExternalURL, CryptoKey: g.Box.Derive("oidc"), Log: log, ClientIP: g.Broker.ClientIP,
		ScopeAudiences: adminapi.ScopeAudiences(cfg.ExternalURL)}
	if err := g.OIDC.Init(); err != nil {
		return nil, err
	}
	g.SAML = &idpsaml.Provider{Store: g.Store, State: g.State, Keys: g.Keys, Sessions: g.Sessions, Pages: rend,
		ExternalURL: cfg.ExternalURL, Log: log}
	// Ending an SSO session (logout, a departed user) tells the apps that used it over the back
	// channels (OIDC back-channel logout, SAML SOAP logout) and, while the browser is at hand
	// (logout, end_session), sends it through the SAML SPs that hear in the browser.
	g.Sessions.Register(g.OIDC, g.SAML)
	// A person who may no longer have access (departed, disabled, removed upstream) loses it
	// through one service: sessions (and so their participants), refresh tokens and their holders.
	// Disabling or deleting an app tells the OpenID Provider (it refuses the client's tokens) and
	// the SAML IdP (it logs the SP's sessions out over SOAP); the sessions lose the SP.
	g.Access = &access.Service{Store: g.Store, Sessions: g.Sessions, Holders: []access.TokenHolders{g.OIDC},
		OIDC: g.OIDC, SAML: g.SAML, UserSessions: g.Sessions, Log: log}
	g.Sync.Access = g.Access
	g.reportCallbackDomains(ctx)
	g.initProvision()
	g.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.routes()
	g.handler = httpx.WithRequestID(httpx.Observe(log, httpx.NewMetrics(g.Registry), httpx.ClientIP(trusted),
		httpx.SecurityHeaders(strings.HasPrefix(cfg.ExternalURL, "https://"), g.failFast(g.Mux))))
	return g, nil
}

// masterKey opens the configured master key; without create, a missing key file is an error
// instead of a new key.
func masterKey(cfg *config.Config, log *slog.Logger, create bool) (*secretbox.Box, error) {
	var key []byte
	if cfg.MasterKey != "" {
		k, err := secretbox.ParseKey(cfg.MasterKey)
		if err != nil {
			return nil, &StartError{fmt.Errorf("master_key: %w", err), ""}
		}
		key = k
	} else {
		if !strings.HasPrefix(cfg.Storage, "sqlite:") {
			// Replicas sharing PostgreSQL must share the key; a generated one per replica would
			// make each unable to read the others' secrets.
			return nil, &StartError{errors.New("master_key is not set and storage is PostgreSQL"),
				"set master_key or QIAO_MASTER_KEY to the same value on every replica (generate one with: openssl rand -base64 32)"}
		}
		if !create {
			k, err := secretbox.LoadKeyFile(filepath.Join(cfg.DataDir, "master.key"))
			if err != nil {
				return nil, &StartError{err, "nothing has been set up in " + cfg.DataDir + " yet: start qiao serve or run qiao apply first"}
			}
			return secretbox.New(k)
		}
		k, created, err := secretbox.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, "master.key"))
		if err != nil {
			return nil, &StartError{err, "fix or restore DATA_DIR/master.key, or set QIAO_MASTER_KEY"}
		}
		if created {
			log.Info("generated a master key; back it up with the database", "file", filepath.Join(cfg.DataDir, "master.key"))
		}
		key = k
	}
	return secretbox.New(key)
}

func (g *Gateway) routes() {
	m := g.Mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", g.readyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(g.Registry, promhttp.HandlerOpts{}))
	sub, _ := fs.Sub(static.Files, ".")
	m.Handle("GET /static/", http.StripPrefix("/static/", httpx.StaticFiles(sub)))
	m.HandleFunc("GET /e/{enterprise}/keys", g.jwks)
	events := &dirsync.EventEndpoint{Store: g.Store, State: g.State, MaxSkew: g.Config.EventMaxSkew.D(), Notify: g.eventNotify, Log: g.Log,
		Decoder: func(src *directory.IdentitySource) (federation.CallbackDecoder, error) {
			return connectors.Decoder(string(src.Kind), src.Config, src.Secrets)
		}}
	m.Handle("GET /e/{enterprise}/sources/{source}/events", events)
	m.Handle("POST /e/{enterprise}/sources/{source}/events", events)
	g.Broker.Routes(m)
	g.SAML.Routes(m)
	g.OIDC.Routes(m)
	g.mountAdminAPI()
	g.mountConsole()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if name := strings.TrimPrefix(r.URL.Path, "/"); (r.Method == http.MethodGet || r.Method == http.MethodHead) && wecom.IsDomainVerifyFile(name) {
			if content, ok := g.domainVerification(r.Context(), name); ok {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = io.WriteString(w, content)
				return
			}
		}
		g.Broker.Pages.NotFound(w, r)
	})
}

// domainVerification finds the WeCom source whose config.domain_verify_file is name: the WeCom
// console accepts a trusted domain only once that file answers at the domain's root.
func (g *Gateway) domainVerification(ctx context.Context, name string) (string, bool) {
	ents, err := g.Store.ListEnterprises(ctx)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		srcs, _ := g.Store.ListSources(ctx, e.ID)
		for _, s := range srcs {
			if string(s.Kind) != wecom.Name || s.Config["domain_verify_file"] != name {
				continue
			}
			c, err := wecom.ParseConfig(s.Config, s.Secrets)
			if err != nil || c.Validate() != nil {
				continue
			}
			if file, content := c.DomainVerification(); file == name {
				return content, true
			}
		}
	}
	return "", false
}

// jwks serves the public signing keys at the path the enterprise's OIDC issuer publishes as its
// jwks_uri. Relying parties cache it; an hour keeps rotations (which keep the old key published
// for key_rotation_grace) visible well before the old key goes.
func (g *Gateway) jwks(w http.ResponseWriter, r *http.Request) {
	if _, err := g.Store.GetEnterprise(r.Context(), r.PathValue("enterprise")); err != nil {
		if errors.Is(err, directory.ErrNotFound) {
			httpx.WriteError(w, r, http.StatusNotFound, "unknown_enterprise", "no enterprise "+strconv.Quote(r.PathValue("enterprise")))
			return
		}
		httpx.WriteError(w, r, http.StatusServiceUnavailable, "store_unavailable", "the directory cannot be read right now")
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(g.Keys.JWKS())
}

// Handler is the gateway's whole HTTP surface, with its middleware.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Serve serves on ln until ctx ends, then drains in-flight requests for up to the configured
// shutdown timeout.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.Log.Handler(), slog.LevelWarn),
	}
	g.startJobs(ctx) // scaleout.go: singleton jobs under leases
	// Provisioning: the outbox on every replica (claims), its reconciles under a lease.
	g.goBackground(func() { g.runProvision(ctx, lease.Holder()) })
	defer g.startStreams(ctx)() // stream.go: DingTalk Stream connections, one replica each
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.drain() // readyz.go: /readyz 503 for drain_delay while still serving
	g.Log.Info("shutting down", "timeout", g.Config.ShutdownTimeout.D().String())
	sctx, cancel := context.WithTimeout(context.Background(), g.Config.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	g.waitBackground(sctx)
	return nil
}

// goBackground runs f as one of the serving gateway's background jobs, which Serve and Close wait
// for before the stores close under them (a job cut off there logged an error for every item it
// held).
func (g *Gateway) goBackground(f func()) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		f()
	}()
}

// waitBackground waits for the background jobs, whose context has ended, until ctx ends.
func (g *Gateway) waitBackground(ctx context.Context) {
	done := make(chan struct{})
	go func() { g.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Log.Warn("shutting down with background jobs still running", "err", ctx.Err())
	}
}

// watchKeys picks up rotations made by `qiao keys rotate` or another replica.
func (g *Gateway) watchKeys(ctx context.Context) {
	t := time.NewTicker(keysReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if changed, err := g.Keys.Reload(); err != nil {
				g.Log.Error("reload signing keys; keeping the current ones", "err", err)
			} else if changed {
				g.Log.Info("signing keys reloaded after a rotation")
			}
		}
	}
}

// reportCallbackDomains warns at start about sources whose callback domain cannot match the
// external URL: the platform would refuse every login through them.
func (g *Gateway) reportCallbackDomains(ctx context.Context) {
	ents, err := g.Store.ListEnterprises(ctx)
	if err != nil {
		return
	}
	for _, e := range ents {
		srcs, _ := g.Store.ListSources(ctx, e.ID)
		for _, s := range srcs {
			if s.Enabled {
				if err := g.Broker.CheckCallbackDomain(s); err != nil {
					g.Log.Warn("identity source cannot log anyone on", "enterprise", e.ID, "source", s.ID, "problem", err.Error())
				}
			}
		}
	}
}

// Close releases the backends.
func (g *Gateway) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), g.Config.ShutdownTimeout.D())
	g.waitBackground(ctx)
	cancel()
	if g.Store != nil {
		g.Store.Close()
	}
	if g.State != nil {
		g.State.Close()
	}
}

// NewLogger builds the JSON (or text) logger the config asks for.
func NewLogger(cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel()}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// RedactDSN hides the password of a DSN for logs.
func RedactDSN(dsn string) string { return config.RedactDSN(dsn) }
