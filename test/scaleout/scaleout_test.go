package scaleout

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/federation/wecom/wecomsim"
	"github.com/qiao-gateway/qiao/keys"
	"github.com/qiao-gateway/qiao/test/scaleout/cluster"
)

const configYAML = `external_url: {{EXT}}
log: {level: warn, format: text}
trusted_proxies: [127.0.0.1/32]
shutdown_timeout: 20s
drain_delay: 500ms
enterprises:
  - id: acme
    name: Acme
    sources:
      - id: wecom
        kind: wecom
        name: 企业微信
        sync: {auto: true, user_info: true, cycle_hours: {{CYCLE}}}
        config: {corp_id: {{CORP}}, agent_id: "{{AGENT}}", api_base_url: {{SIM}}, login_base_url: {{SIM}}, open_base_url: {{SIM}}, oauth_base_url: {{SIM}}, callback_domain: "{{DOMAIN}}"}
        secrets: {secret: "{{SECRET}}", contact_secret: "{{CSECRET}}", callback_token: "{{TOKEN}}", encoding_aes_key: "{{AES}}"}
    clients:
      - id: web
        type: web
        secret: web-secret
        auth_method: client_secret_post
        access_token_format: jwt
        redirect_uris: ["{{RP}}/cb"]
        post_logout_redirect_uris: ["{{RP}}/bye"]
        backchannel_logout_uri: {{RP}}/bcl
      - id: svc
        type: service
        secret: svc-secret
        access_token_format: jwt
    service_providers:
      - entity_id: https://sp.test/metadata
        name: SP
        metadata_file: {{SPMD}}
`

// testKnobs is the job timing the test's binary runs on (cluster.TestKnobsTag): the scheduler
// looks for due syncs every second, cycle_hours counts seconds, and the scheduler's lease and a
// source's locks expire 4 s after their holder stops renewing them.
const testKnobs = "scheduler_tick=1s,sync_lease_ttl=4s,sync_lock_ttl=4s,cycle_unit=1s"

// cycle is the source's sync cycle under testKnobs (cycle_hours: 3).
const cycle = 3 * time.Second

// TestThreeReplicas runs three `qiao serve` processes on one PostgreSQL and one Redis behind a
// round-robin proxy, and walks the scale-out story: keys shared through the database, a WeCom logon
// whose steps land on different replicas, SAML SSO and SLO across replicas, events applied exactly
// once, PostgreSQL and Redis restarted under load, a rolling restart under token load with no
// failed request, a scheduled sync once per cycle, and the sync lease's holder SIGKILLed mid-apply.
func TestThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	pg := cluster.StartPostgres(t)
	rd := cluster.StartRedis(t)
	dir := t.TempDir()
	bin := cluster.BuildQiao(t, dir, cluster.TestKnobsTag)

	// The external URL is the proxy's; every replica has a data directory of its own (nothing is
	// shared on disk: a replica needs only the DSNs and the master key).
	proxyPort := cluster.FreePort(t)
	ext := "http://127.0.0.1:" + strconv.Itoa(proxyPort)
	domain := "127.0.0.1:" + strconv.Itoa(proxyPort)
	ws := wecomsim.NewSetup(30, 7, domain)
	sim := wecomsim.New(ws.Config)
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() { simSrv.Close(); sim.Close() })

	var bclMu sync.Mutex
	var bcl []string // logout tokens the RP received
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bcl" {
			_ = r.ParseForm()
			bclMu.Lock()
			bcl = append(bcl, r.PostForm.Get("logout_token"))
			bclMu.Unlock()
		}
	}))
	t.Cleanup(rp.Close)
	logouts := func() int { bclMu.Lock(); defer bclMu.Unlock(); return len(bcl) }

	sp := newSP(t)
	spMD := filepath.Join(dir, "sp.xml")
	if err := os.WriteFile(spMD, spMetadata(sp), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("{{EXT}}", ext, "{{CORP}}", ws.CorpID, "{{AGENT}}", strconv.Itoa(ws.AgentID), "{{SIM}}", simSrv.URL,
		"{{DOMAIN}}", domain, "{{SECRET}}", ws.Secret, "{{CSECRET}}", ws.ContactSecret, "{{TOKEN}}", ws.CallbackToken,
		"{{AES}}", ws.CallbackAESKey, "{{RP}}", rp.URL, "{{CYCLE}}", strconv.Itoa(int(cycle/time.Second)), "{{SPMD}}", spMD).Replace(configYAML)
	cfgPath := filepath.Join(dir, "qiao.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The binary is built with the test knobs: the sync scheduler ticks every second, a cycle_hours
	// counts seconds, and the scheduler's lease and a source's locks outlive a killed holder by
	// seconds, not minutes, so the test watches several cycles and a takeover.
	c := cluster.New(t, cluster.Options{Bin: bin, Config: cfgPath, Replicas: 3, ProxyAddr: domain,
		Env: []string{"QIAO_STORAGE=" + pg.DSN(), "QIAO_STATE=" + rd.URL(), "QIAO_MASTER_KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
			"QIAO_TESTKNOBS=" + testKnobs}})
	db := cluster.OpenDB(t, pg.DSN())
	iss := ext + "/e/acme"

	t.Run("keys are the database's, the same on every replica", func(t *testing.T) {
		var first string
		for _, r := range c.Replicas {
			resp, err := cluster.Pinned(r.Addr, nil).Get(iss + "/keys")
			if err != nil {
				t.Fatal(err)
			}
			body := cluster.ReadAll(resp)
			if first == "" {
				first = body
			} else if body != first {
				t.Fatalf("replica %s publishes other keys:\n%s\n%s", r.Name, body, first)
			}
		}
		if n := cluster.Count(t, db, `SELECT count(*) FROM signing_keys WHERE retired_at = 0`); n != len(keys.Algs) {
			t.Fatalf("%d active signing keys in the database, want one per algorithm (%d)", n, len(keys.Algs))
		}
	})

	// The directory: the scheduler's first cycle (auto sync) on whichever replica holds its lease.
	cluster.Eventually(t, "the first scheduled sync", 60*time.Second, func() bool {
		return cluster.Count(t, db, `SELECT count(*) FROM sync_tasks WHERE trigger_ = 'schedule' AND status = 'succeeded'`) > 0
	})
	if n := cluster.Count(t, db, `SELECT count(*) FROM user_links WHERE source_id = 'wecom'`); n != 30 {
		t.Fatalf("%d people linked after the first sync, want the simulator's 30", n)
	}

	a, b, cc := c.Replicas[0], c.Replicas[1], c.Replicas[2]
	var tok map[string]any
	t.Run("a WeCom logon across replicas, back-channel logout once", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid offline_access"},
			"redirect_uri": {rp.URL + "/cb"}, "state": {"st"}, "nonce": {"n"}}
		// Started on A: A sends the browser to the login pages and on to WeCom.
		u := iss + "/authorize?" + q.Encode()
		client := cluster.Pinned(a.Addr, jar)
		simClient := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		hops := 0
		for !strings.HasPrefix(u, rp.URL+"/cb") {
			if hops++; hops > 15 {
				t.Fatalf("redirect loop at %s", u)
			}
			cl := client
			if strings.HasPrefix(u, simSrv.URL) {
				// WeCom: the person scans; the platform sends the browser back to the callback,
				// which B handles (and everything after it).
				u = strings.TrimSuffix(u, "#wechat_redirect") + "&sim_user=zhangsan"
				cl = simClient
				client = cluster.Pinned(b.Addr, jar)
			}
			resp, err := cl.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body := cluster.ReadAll(resp)
			if resp.StatusCode < 300 || resp.StatusCode >= 400 {
				t.Fatalf("%s: %d\n%s", u, resp.StatusCode, body)
			}
			next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			u = next.String()
		}
		code := mustQuery(t, u, "code")
		// The code redeemed at C.
		st, m := postForm(t, cluster.Pinned(cc.Addr, nil), iss+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {rp.URL + "/cb"}, "client_id": {"web"}, "client_secret": {"web-secret"}})
		if st != 200 || m["refresh_token"] == nil || m["id_token"] == nil {
			t.Fatalf("code at C: %d %v", st, m)
		}
		// Refreshed at A.
		st, m2 := postForm(t, cluster.Pinned(a.Addr, nil), iss+"/oauth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {m["refresh_token"].(string)}, "client_id": {"web"}, "client_secret": {"web-secret"}})
		if st != 200 || m2["access_token"] == nil {
			t.Fatalf("refresh at A: %d %v", st, m2)
		}
		tok = m2
		// Logged out at B: the RP hears it on its back channel, once.
		eq := url.Values{"id_token_hint": {m["id_token"].(string)}, "post_logout_redirect_uri": {rp.URL + "/bye"}, "state": {"s9"}}
		resp, err := cluster.Pinned(b.Addr, jar).Get(iss + "/end_session?" + eq.Encode())
		if err != nil {
			t.Fatal(err)
		}
		cluster.ReadAll(resp)
		if loc := resp.Header.Get("Location"); loc != rp.URL+"/bye?state=s9" {
			t.Fatalf("end_session at B: %d %s", resp.StatusCode, loc)
		}
		cluster.Eventually(t, "back-channel logout delivered", 30*time.Second, func() bool { return logouts() >= 1 })
	})

	t.Run("SAML SSO started at A, logon via B, SLO at C", func(t *testing.T) {
		samlAcrossReplicas(t, sp, iss, simSrv.URL, a, b, cc)
	})

	t.Run("events posted to any replica are applied exactly once", func(t *testing.T) {
		// WeCom pushes to the external URL: the proxy spreads the events over the replicas.
		resp, err := http.Post(simSrv.URL+"/_sim/callback", "application/json", strings.NewReader(`{"url":"`+iss+`/sources/wecom/events"}`))
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("register the callback: %v %v", err, resp)
		}
		cluster.ReadAll(resp)
		var gone []string
		org := sim.Org()
		org.RLock()
		for _, id := range org.UserIDs() {
			if id != "zhangsan" && len(gone) < 6 {
				gone = append(gone, id)
			}
		}
		org.RUnlock()
		for _, id := range gone {
			req, _ := http.NewRequest("DELETE", simSrv.URL+"/_sim/users/"+id, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode >= 300 {
				t.Fatalf("delete %s in WeCom: %v %v", id, err, resp)
			}
			cluster.ReadAll(resp)
		}
		cluster.Eventually(t, "the events applied", 60*time.Second, func() bool {
			return cluster.Count(t, db, `SELECT count(*) FROM source_events WHERE status = 'applied'`) == len(gone)
		})
		if n := cluster.Count(t, db, `SELECT count(*) FROM source_events`); n != len(gone) {
			t.Fatalf("%d events stored for %d deliveries", n, len(gone))
		}
		if n := cluster.Count(t, db, `SELECT count(*) FROM sync_tasks WHERE trigger_ = 'event'`); n != len(gone) {
			t.Fatalf("%d event tasks ran for %d events: some applied twice", n, len(gone))
		}
		for _, id := range gone {
			if n := cluster.Count(t, db, `SELECT count(*) FROM user_links WHERE source_id = 'wecom' AND upstream_id = $1`, id); n != 0 {
				t.Fatalf("%s is still linked after the event", id)
			}
		}
	})

	token := func(cl *http.Client) (int, string) {
		req, _ := http.NewRequest("POST", iss+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret")
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, resp.Header.Get("Retry-After") + " " + cluster.ReadAll(resp)
	}

	t.Run("PostgreSQL restarted under load: 503 during the outage, service after, no replica restarted", func(t *testing.T) {
		var ok, unavailable, other atomic.Int64
		var slow atomic.Int64
		var otherMu sync.Mutex
		var others []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		cl := &http.Client{Timeout: 30 * time.Second}
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					began := time.Now()
					st, body := token(cl)
					if time.Since(began) > 10*time.Second {
						slow.Add(1)
					}
					switch {
					case st == 200:
						ok.Add(1)
					case st == 503 && strings.HasPrefix(body, "5 ") && strings.Contains(body, "temporarily_unavailable"):
						unavailable.Add(1)
					default:
						other.Add(1)
						otherMu.Lock()
						others = append(others, fmt.Sprintf("%d %s", st, body))
						otherMu.Unlock()
					}
				}
			}()
		}
		cluster.Eventually(t, "tokens issued before the outage", 30*time.Second, func() bool { return ok.Load() > 20 })
		pg.Stop()
		cluster.Eventually(t, "503s during the outage", 30*time.Second, func() bool { return unavailable.Load() > 20 })
		for _, r := range c.Replicas {
			resp, err := http.Get("http://" + r.Addr + "/readyz")
			if err != nil || resp.StatusCode != 503 {
				t.Fatalf("replica %s /readyz during the outage: %v %v", r.Name, err, resp)
			}
			cluster.ReadAll(resp)
		}
		pg.Start()
		before := ok.Load()
		cluster.Eventually(t, "service after the outage", 60*time.Second, func() bool { return ok.Load() > before+50 })
		close(stop)
		wg.Wait()
		for _, r := range c.Replicas {
			if !r.Alive() {
				t.Fatalf("replica %s exited during the outage:\n%s", r.Name, r.LogText())
			}
		}
		// While the outage was being noticed (up to a second) a request could fail on its way
		// through the store; none may take the form of a 500 or hang.
		otherMu.Lock()
		defer otherMu.Unlock()
		for _, o := range others {
			if strings.HasPrefix(o, "500") || strings.HasPrefix(o, "0 ") {
				t.Fatalf("a request failed other than with 503: %s (ok %d, 503 %d, other %d)", o, ok.Load(), unavailable.Load(), other.Load())
			}
		}
		if slow.Load() > 0 {
			t.Fatalf("%d requests hung for more than 10 s during the outage", slow.Load())
		}
		t.Logf("PostgreSQL restart: %d tokens, %d fast 503s, %d other answers %v", ok.Load(), unavailable.Load(), other.Load(), others)
	})

	t.Run("Redis restarted: sessions are lost (no persistence configured), nothing crashes", func(t *testing.T) {
		rd.Stop()
		cluster.Eventually(t, "readyz 503 without Redis", 20*time.Second, func() bool {
			resp, err := http.Get("http://" + a.Addr + "/readyz")
			if err != nil {
				return false
			}
			cluster.ReadAll(resp)
			return resp.StatusCode == 503
		})
		rd.Start()
		cluster.Eventually(t, "every replica ready again", 30*time.Second, func() bool {
			for _, r := range c.Replicas {
				resp, err := http.Get("http://" + r.Addr + "/readyz")
				if err != nil {
					return false
				}
				cluster.ReadAll(resp)
				if resp.StatusCode != 200 {
					return false
				}
			}
			return true
		})
		for _, r := range c.Replicas {
			if !r.Alive() {
				t.Fatalf("replica %s exited when Redis restarted:\n%s", r.Name, r.LogText())
			}
		}
		// Refresh tokens live in PostgreSQL: the grant outlives the Redis restart.
		st, m := postForm(t, http.DefaultClient, iss+"/oauth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {tok["refresh_token"].(string)}, "client_id": {"web"}, "client_secret": {"web-secret"}})
		if st != 200 {
			t.Fatalf("refresh after the Redis restart: %d %v", st, m)
		}
	})

	t.Run("rolling restart of all three under token load: no failed request", func(t *testing.T) {
		var ok, failed atomic.Int64
		var failMu sync.Mutex
		var fails []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		cl := &http.Client{Timeout: 30 * time.Second}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if st, body := token(cl); st == 200 {
						ok.Add(1)
					} else {
						failed.Add(1)
						failMu.Lock()
						fails = append(fails, fmt.Sprintf("%s %d %s", time.Now().Format(time.TimeOnly+".000"), st, body))
						failMu.Unlock()
					}
				}
			}()
		}
		cluster.Eventually(t, "load running", 30*time.Second, func() bool { return ok.Load() > 20 })
		for _, r := range c.Replicas {
			t.Logf("%s: restarting %s", time.Now().Format(time.TimeOnly+".000"), r.Name)
			c.Stop(r)
			before := ok.Load()
			cluster.Eventually(t, "tokens while "+r.Name+" is down", 30*time.Second, func() bool { return ok.Load() > before+20 })
			c.Start(r)
		}
		before := ok.Load()
		cluster.Eventually(t, "tokens after the rolling restart", 30*time.Second, func() bool { return ok.Load() > before+20 })
		close(stop)
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d of %d requests failed during the rolling restart: %v", failed.Load(), ok.Load()+failed.Load(), fails[:min(len(fails), 5)])
		}
		t.Logf("rolling restart: %d tokens, 0 failed", ok.Load())
	})

	t.Run("a scheduled sync runs once per cycle", func(t *testing.T) { scheduledOncePerCycle(t, db) })

	t.Run("SIGKILL of the sync lease's holder mid-apply: directory intact, the next run on another replica, nothing twice", func(t *testing.T) {
		killSyncHolder(t, c, sim, db)
	})

	if n := logouts(); n != 1 {
		t.Fatalf("the RP heard %d back-channel logouts for one logout, want 1", n)
	}
}

func mustQuery(t *testing.T, u, k string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Query().Get(k) == "" {
		t.Fatalf("no %s in %s", k, u)
	}
	return p.Query().Get(k)
}

func postForm(t *testing.T, cl *http.Client, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := cl.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(cluster.ReadAll(resp)), &m)
	return resp.StatusCode, m
}
