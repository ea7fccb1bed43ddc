// Command tokenbench measures the OpenID Provider's token endpoint: authorization_code,
// refresh_token and client_credentials grants at a given concurrency, with RS256 ID tokens, and
// in the same run the raw RS256 signing rate of the same key, so the two can be compared.
//
//	go run ./bench/tokenbench -c 32 -d 10s
//	go run ./bench/tokenbench -storage 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' -state redis://127.0.0.1:6379/0
//
// With a PostgreSQL DSN the driver creates a fresh database on that server and drops it after.
//
// Each grant's line ends with what one request cost the stores on average: SQL statements and
// transactions, and state round trips (Redis commands or pipelines; memory operations are not
// counted). -cpuprofile P writes one CPU profile per measured grant, to P.<grant>, covering that
// grant's measurement alone; -blockprofile and -mutexprofile write profiles of the whole run.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/directory/sqlstore"
	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/internal/pgtemp"
	"github.com/qiao-gateway/qiao/internal/state"
	"github.com/qiao-gateway/qiao/keys"
)

type profiles struct{ cpu, block, mutex string }

func (p profiles) start() (stop func(), err error) {
	if p.block != "" {
		runtime.SetBlockProfileRate(10000) // one sample per 10 µs blocked
	}
	if p.mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	return func() {
		for name, path := range map[string]string{"block": p.block, "mutex": p.mutex} {
			if path == "" {
				continue
			}
			if out, err := os.Create(path); err == nil {
				_ = pprof.Lookup(name).WriteTo(out, 0)
				out.Close()
			}
		}
	}, nil
}

// cpuWindow profiles one grant's measurement alone, into the -cpuprofile path with the grant's
// name appended: minting codes, the raw signing runs and setup stay out of it.
func (p profiles) cpuWindow(grant string) (stop func()) {
	if p.cpu == "" {
		return func() {}
	}
	return benchkit.CPUProfile(p.cpu + "." + strings.NewReplacer(" ", "_", ",", "").Replace(strings.TrimSpace(grant)))
}

func main() {
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement")
	storage := flag.String("storage", "", "storage DSN (default: SQLite in a temporary directory)")
	stateDSN := flag.String("state", "", "state DSN (default: memory)")
	var prof profiles
	flag.StringVar(&prof.cpu, "cpuprofile", "", "write a CPU profile of each measured grant to this path with the grant's name appended")
	flag.StringVar(&prof.block, "blockprofile", "", "write a block profile of the run to this file")
	flag.StringVar(&prof.mutex, "mutexprofile", "", "write a mutex profile of the run to this file")
	flag.StringVar(&idTokenAlg, "alg", "RS256", "the ID token algorithm of the app whose codes and refresh tokens are exchanged (RS256, ES256 or EdDSA)")
	grants := flag.String("grants", "", "comma-separated grants to measure, of authorization_code, refresh_token, client_credentials, jwt, es256, eddsa (default: all; refresh_token runs authorization_code first for its tokens)")
	flag.Parse()
	if *grants != "" {
		selected = map[string]bool{}
		for _, g := range strings.Split(*grants, ",") {
			selected[strings.TrimSpace(g)] = true
		}
		if selected["refresh_token"] {
			selected["authorization_code"] = true
		}
	}
	if err := run(*conc, *dur, *storage, *stateDSN, prof); err != nil {
		fmt.Fprintln(os.Stderr, "tokenbench:", err)
		os.Exit(1)
	}
}

// idTokenAlg is the demo app's ID token algorithm (-alg).
var idTokenAlg string

// selected is the grants -grants names (nil: all).
var selected map[string]bool

// wanted says whether the grant (its -grants name) is measured.
func wanted(grant string) bool { return selected == nil || selected[grant] }

// jwtServiceSecret is the secret of the client_credentials client with JWT access tokens the
// driver adds to the demo.
const jwtServiceSecret = "tokenbench-jwt-service-secret-0123456789"

func run(conc int, dur time.Duration, storage, stateDSN string, prof profiles) error {
	if strings.HasPrefix(storage, "postgres") {
		// A fresh database of the server, dropped afterwards.
		fresh, drop, err := pgtemp.Create(storage, "qiao_tokenbench")
		if err != nil {
			return err
		}
		defer drop()
		storage = fresh
	}
	d, err := benchkit.StartDemo("tokenbench", func(cfg *config.Config) {
		if storage != "" {
			cfg.Storage = storage
			cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
		}
		if stateDSN != "" {
			cfg.State = stateDSN
		}
		for i := range cfg.Enterprises[0].Clients {
			if c := &cfg.Enterprises[0].Clients[i]; c.ID == "demo-app" && idTokenAlg != "RS256" {
				c.IDTokenAlg = idTokenAlg
			}
		}
		cfg.Enterprises[0].Clients = append(cfg.Enterprises[0].Clients,
			config.Client{ID: "jwt-service", Name: "Service with JWT access tokens", Type: "service", Secret: jwtServiceSecret, AccessTokenFormat: "jwt"},
			config.Client{ID: "es256-service", Name: "Service with ES256 JWT access tokens", Type: "service", Secret: jwtServiceSecret, AccessTokenFormat: "jwt", IDTokenAlg: "ES256"},
			config.Client{ID: "eddsa-service", Name: "Service with EdDSA JWT access tokens", Type: "service", Secret: jwtServiceSecret, AccessTokenFormat: "jwt", IDTokenAlg: "EdDSA"})
	})
	if err != nil {
		return err
	}
	defer d.Close()
	stop, err := prof.start()
	if err != nil {
		return err
	}
	defer stop()
	// What a request costs the stores.
	counts := func() (stmts, txs, trips, conns int64) {
		if st, ok := d.GW.Store.(*sqlstore.Store); ok {
			c := st.Counts()
			stmts, txs = c.Statements, c.Transactions
			// Connections ever opened: those open now and those the pool has closed.
			ds := st.DB().Stats()
			conns = int64(ds.OpenConnections) + ds.MaxIdleClosed + ds.MaxIdleTimeClosed + ds.MaxLifetimeClosed
		}
		if r, ok := d.GW.State.(*state.Redis); ok {
			trips = r.RoundTrips()
		}
		return
	}
	measure := func(name string, op func(int) error) benchkit.Result {
		s0, t0, r0, c0 := counts()
		stopCPU := prof.cpuWindow(name)
		res := benchkit.Measure(name, conc, dur, op)
		stopCPU()
		s1, t1, r1, c1 := counts()
		if n := float64(res.N + res.Errs); n > 0 {
			res.Note = fmt.Sprintf("SQL %.1f stmts %.2f tx, state %.1f trips per request, %d SQL connections opened", float64(s1-s0)/n, float64(t1-t0)/n, float64(r1-r0)/n, c1-c0)
		}
		return res
	}
	gw, creds, base := d.GW, d.Creds, d.Base
	iss := base + "/e/demo"
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2}
	hc := &http.Client{Transport: tr}

	stateName := "memory"
	if strings.HasPrefix(d.Config.State, "redis") {
		stateName = "Redis"
	}
	benchkit.Setup = fmt.Sprintf("%s + %s, c=%d", storageName(d.Config.Storage), stateName, conc)
	if idTokenAlg != "RS256" {
		benchkit.Setup += ", " + idTokenAlg + " ID tokens"
	}
	fmt.Printf("tokenbench: concurrency %d, %v per grant, storage %s, state %s, %s ID tokens, opaque access tokens\n",
		conc, dur, gateway.RedactDSN(d.Config.Storage), d.Config.State, idTokenAlg)

	// A signed-in browser, to mint codes without an upstream in the loop.
	browser := benchkit.Browser(tr)
	if err := benchkit.PasswordLogin(browser, base, creds.Password); err != nil {
		return err
	}
	redirect := base + "/demo-app/callback"
	mintCode := func() (string, error) {
		q := url.Values{"client_id": {"demo-app"}, "response_type": {"code"}, "scope": {"openid profile offline_access"},
			"redirect_uri": {redirect}, "state": {"s"}, "nonce": {"n"}}
		u := iss + "/authorize?" + q.Encode()
		for i := 0; i < 5; i++ {
			resp, err := browser.Get(u)
			if err != nil {
				return "", err
			}
			resp.Body.Close()
			loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if loc == nil || resp.Header.Get("Location") == "" {
				return "", fmt.Errorf("authorize stopped at %s with %s", u, resp.Status)
			}
			if strings.HasPrefix(loc.String(), redirect) {
				return loc.Query().Get("code"), nil
			}
			u = loc.String()
		}
		return "", fmt.Errorf("no code")
	}
	token := func(form url.Values, id, secret string) (map[string]any, error) {
		req, _ := http.NewRequest("POST", iss+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s: %s", resp.Status, b)
		}
		var m map[string]any
		return m, json.Unmarshal(b, &m)
	}

	// Raw RS256 signing with the same key and a claim set of an ID token's size, measured for half
	// the time right after each grant: on a shared machine the rate moves, and each grant's figure
	// is read beside the signing rate of its own moment.
	k, err := gw.Keys.Signing(keys.RS256)
	if err != nil {
		return err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Signer, KeyID: k.ID}}, nil)
	if err != nil {
		return err
	}
	claims, _ := json.Marshal(map[string]any{"iss": iss, "sub": "01a2-user", "aud": "demo-app", "exp": time.Now().Unix(), "iat": time.Now().Unix(),
		"nonce": "n", "name": "张三", "preferred_username": "zhangsan", "amr": []string{"pwd"}, "sid": "abc", "at_hash": fmt.Sprintf("%x", sha256.Sum256(nil))[:22]})
	report := func(res benchkit.Result) {
		fmt.Println(res)
		sign := benchkit.Measure("  raw RS256 sign", conc, dur/2, func(int) error {
			_, err := signer.Sign(claims)
			return err
		})
		fmt.Printf("%s  -> %s at %.2f of the sign rate\n", sign, res.Name, res.Rate()/sign.Rate())
		benchkit.Emit("tokenbench", res, sign.Rate())
	}

	// authorization_code: codes minted beforehand (they live 2 minutes), then exchanged.
	var refreshSeeds []string
	if wanted("authorization_code") {
		est := int(dur.Seconds() * 1500) // more than the exchange rate can use
		codes := make(chan string, est)
		var mintWG sync.WaitGroup
		var mintErr atomic.Value
		start := time.Now()
		for w := 0; w < 8; w++ {
			mintWG.Add(1)
			go func() {
				defer mintWG.Done()
				for len(codes) < est-8 {
					c, err := mintCode()
					if err != nil {
						mintErr.Store(err)
						return
					}
					codes <- c
				}
			}()
		}
		mintWG.Wait()
		if e := mintErr.Load(); e != nil {
			return e.(error)
		}
		close(codes)
		fmt.Printf("minted %d codes in %v\n", len(codes), time.Since(start).Round(time.Millisecond))
		var seedMu sync.Mutex
		res := measure("authorization_code", func(int) error {
			c, ok := <-codes
			if !ok {
				return benchkit.ErrDone
			}
			m, err := token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}}, "demo-app", creds.DemoAppSecret)
			if err == nil {
				seedMu.Lock()
				if len(refreshSeeds) < conc {
					refreshSeeds = append(refreshSeeds, m["refresh_token"].(string))
				}
				seedMu.Unlock()
			}
			return err
		})
		report(res)
	}

	// refresh_token: each worker walks its own rotation chain.
	if wanted("refresh_token") {
		chains := make([]string, len(refreshSeeds))
		copy(chains, refreshSeeds)
		res := measure("refresh_token", func(gid int) error {
			if gid >= len(chains) {
				return fmt.Errorf("no refresh chain for worker %d", gid)
			}
			m, err := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {chains[gid]}}, "demo-app", creds.DemoAppSecret)
			if err != nil {
				return err
			}
			chains[gid] = m["refresh_token"].(string)
			return nil
		})
		report(res)
	}

	// client_credentials with opaque access tokens, then JWTs signed RS256, ES256 (the fast
	// choice: id_token_alg ES256) and EdDSA (Ed25519, the other fast choice).
	for _, g := range []struct{ grant, name, client, secret string }{
		{"client_credentials", "client_credentials", "demo-service", creds.DemoServiceSecret},
		{"jwt", "client_credentials JWT", "jwt-service", jwtServiceSecret},
		{"es256", "client_credentials ES256", "es256-service", jwtServiceSecret},
		{"eddsa", "client_credentials EdDSA", "eddsa-service", jwtServiceSecret},
	} {
		if !wanted(g.grant) {
			continue
		}
		report(measure(g.name, func(int) error {
			_, err := token(url.Values{"grant_type": {"client_credentials"}}, g.client, g.secret)
			return err
		}))
	}
	return nil
}

func storageName(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "PostgreSQL"
	}
	return "SQLite"
}
