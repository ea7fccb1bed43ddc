// Command tokenbench measures the OpenID Provider's token endpoint: authorization_code,
// refresh_token and client_credentials grants at a given concurrency, with RS256 ID tokens, and
// in the same run the raw RS256 signing rate of the same key, so the two can be compared.
//
//	go run ./bench/tokenbench -c 32 -d 10s
//	go run ./bench/tokenbench -storage 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' -state redis://127.0.0.1:6379/0
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/gateway"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
)

func main() {
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of each measurement")
	storage := flag.String("storage", "", "storage DSN (default: SQLite in a temporary directory)")
	stateDSN := flag.String("state", "", "state DSN (default: memory)")
	flag.Parse()
	if err := run(*conc, *dur, *storage, *stateDSN); err != nil {
		fmt.Fprintln(os.Stderr, "tokenbench:", err)
		os.Exit(1)
	}
}

func run(conc int, dur time.Duration, storage, stateDSN string) error {
	d, err := benchkit.StartDemo("tokenbench", func(cfg *config.Config) {
		if storage != "" {
			cfg.Storage = storage
			cfg.MasterKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
		}
		if stateDSN != "" {
			cfg.State = stateDSN
		}
	})
	if err != nil {
		return err
	}
	defer d.Close()
	gw, creds, base := d.GW, d.Creds, d.Base
	iss := base + "/e/demo"
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2}
	hc := &http.Client{Transport: tr}

	fmt.Printf("tokenbench: concurrency %d, %v per grant, storage %s, state %s, RS256 ID tokens, opaque access tokens\n",
		conc, dur, gateway.RedactDSN(d.Config.Storage), d.Config.State)

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

	// authorization_code: codes minted beforehand (they live 2 minutes), then exchanged.
	est := int(dur.Seconds() * 2500) // more than the exchange rate can use
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
	var refreshSeeds []string
	var seedMu sync.Mutex
	res := benchkit.Measure("authorization_code", conc, dur, func(int) error {
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
	fmt.Println(res)

	// refresh_token: each worker walks its own rotation chain.
	chains := make([]string, len(refreshSeeds))
	copy(chains, refreshSeeds)
	res = benchkit.Measure("refresh_token", conc, dur, func(gid int) error {
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
	fmt.Println(res)

	res = benchkit.Measure("client_credentials", conc, dur, func(int) error {
		_, err := token(url.Values{"grant_type": {"client_credentials"}}, "demo-service", creds.DemoServiceSecret)
		return err
	})
	fmt.Println(res)

	// Raw RS256 signing with the same key and a claim set of an ID token's size.
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
	sign := benchkit.Measure("raw RS256 sign", conc, dur, func(int) error {
		_, err := signer.Sign(claims)
		return err
	})
	fmt.Println(sign)
	return nil
}
