// Package simkit is what the WeCom and DingTalk simulators share that is not platform behaviour:
// the call log, error/latency injection, fixed-window rate counters, single-use codes, the QR
// image of a scan URL and the "scan as" page.
package simkit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"rsc.io/qr"
)

// Call is one request a simulator received.
type Call struct {
	At      time.Time `json:"at"`
	Method  string    `json:"method"`
	API     string    `json:"api"`
	IP      string    `json:"ip"`
	ErrCode int       `json:"errcode"`
}

// Fault is an injected failure: the next Count calls of API (or of every API when API is "*")
// answer ErrCode (when non-zero) after Latency.
type Fault struct {
	API       string `json:"api"`
	ErrCode   int    `json:"errcode"`
	Count     int    `json:"count"` // 0 = until cleared
	LatencyMS int    `json:"latency_ms"`
	HTTPCode  int    `json:"http_status,omitempty"` // DingTalk new-API faults, or a 5xx
}

// Kit holds a simulator's shared machinery.
type Kit struct {
	mu     sync.Mutex
	calls  []Call
	max    int
	faults []*Fault
	counts map[string]*window
}

type window struct {
	start time.Time
	n     int
}

// NewKit returns a kit keeping the last max calls.
func NewKit(max int) *Kit { return &Kit{max: max, counts: map[string]*window{}} }

// Record logs a call.
func (k *Kit) Record(c Call) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.calls) >= k.max {
		copy(k.calls, k.calls[len(k.calls)/2:])
		k.calls = k.calls[:len(k.calls)-len(k.calls)/2]
	}
	k.calls = append(k.calls, c)
}

// Calls returns the logged calls.
func (k *Kit) Calls() []Call {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Call(nil), k.calls...)
}

// ClearCalls empties the call log.
func (k *Kit) ClearCalls() {
	k.mu.Lock()
	k.calls = nil
	k.mu.Unlock()
}

// AddFault injects a fault.
func (k *Kit) AddFault(f Fault) {
	k.mu.Lock()
	k.faults = append(k.faults, &f)
	k.mu.Unlock()
}

// ClearFaults removes every fault.
func (k *Kit) ClearFaults() {
	k.mu.Lock()
	k.faults = nil
	k.mu.Unlock()
}

// TakeFault returns the fault that applies to this call of api, consuming one use of it.
func (k *Kit) TakeFault(api string) *Fault {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, f := range k.faults {
		if f.API != api && f.API != "*" {
			continue
		}
		out := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				k.faults = append(k.faults[:i], k.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

// Hit counts one call in the fixed window key of length per, and reports whether the count is
// now above limit.
func (k *Kit) Hit(key string, per time.Duration, limit int, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.counts[key]
	if w == nil || now.Sub(w.start) >= per {
		w = &window{start: now}
		k.counts[key] = w
	}
	w.n++
	return w.n > limit
}

// Blocked records or checks a block: Block(key, until) starts one; IsBlocked tells whether it holds.
func (k *Kit) Block(key string, until time.Time) {
	k.mu.Lock()
	k.counts["block:"+key] = &window{start: until}
	k.mu.Unlock()
}

// IsBlocked reports whether key is blocked at now.
func (k *Kit) IsBlocked(key string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.counts["block:"+key]
	return w != nil && now.Before(w.start)
}

// ResetLimits forgets every rate counter and block.
func (k *Kit) ResetLimits() {
	k.mu.Lock()
	k.counts = map[string]*window{}
	k.mu.Unlock()
}

// CallerIP is the request's peer address.
func CallerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Token returns n random bytes as hex.
func Token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WriteJSON writes v with HTTP status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Codes is a store of single-use, expiring codes.
type Codes[T any] struct {
	mu    sync.Mutex
	items map[string]codeItem[T]
}

type codeItem[T any] struct {
	v   T
	exp time.Time
}

// NewCodes returns an empty store.
func NewCodes[T any]() *Codes[T] { return &Codes[T]{items: map[string]codeItem[T]{}} }

// Issue stores v under a fresh code valid for ttl.
func (c *Codes[T]) Issue(v T, ttl time.Duration, now time.Time) string {
	code := Token(16)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, it := range c.items { // codes are few; sweep on write
		if now.After(it.exp) {
			delete(c.items, k)
		}
	}
	c.items[code] = codeItem[T]{v, now.Add(ttl)}
	return code
}

// Take returns and deletes the value of an unexpired code.
func (c *Codes[T]) Take(code string, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[code]
	delete(c.items, code)
	var zero T
	if !ok || now.After(it.exp) {
		return zero, false
	}
	return it.v, true
}

// Peek returns the value of an unexpired code without using it.
func (c *Codes[T]) Peek(code string, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[code]
	var zero T
	if !ok || now.After(it.exp) {
		return zero, false
	}
	return it.v, true
}

// QRDataURL renders text as a QR code PNG data: URL.
func QRDataURL(text string) template.URL {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return ""
	}
	c.Scale = 6
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(c.PNG()))
}

// Person is a choice on the scan page.
type Person struct {
	ID, Name, Dept string
}

// ScanPage is the data of the login page a simulator shows.
type ScanPage struct {
	Platform string // 企业微信 / 钉钉
	Title    string
	QR       template.URL
	ScanURL  string
	Action   string // where the "scan as" form posts
	Ticket   string
	People   []Person
	Outsider bool // offer "scan as someone outside the corp"
	Error    string
	ErrCode  int
	// Back is where an error page's way back leads: the app's origin (see BackTo).
	Back string
}

// BackTo is the way back from a platform's error page to the app that sent the browser there:
// the origin of the login's redirect_uri, or of the page the browser came from; "" when neither
// is an http(s) URL.
func BackTo(redirect string, r *http.Request) string {
	for _, v := range []string{redirect, r.Referer()} {
		u, err := url.Parse(v)
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Host != r.Host {
			return u.Scheme + "://" + u.Host + "/"
		}
	}
	return ""
}

var scanTmpl = template.Must(template.New("scan").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Platform}} · {{.Title}}</title>
<style>
body{font:16px/1.5 system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f2f3f5;color:#1f2329}
main{max-width:26rem;margin:4vh auto;background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.1)}
h1{font-size:1.25rem;margin:0 0 .5rem}.sim{color:#8a5a00;background:#fff7e6;padding:.25rem .5rem;border-radius:4px;font-size:.8rem}
img{display:block;margin:1rem auto;width:200px;height:200px;image-rendering:pixelated}
ul{list-style:none;padding:0;max-height:22rem;overflow:auto}li{margin:.25rem 0}
button{width:100%;text-align:left;padding:.6rem .8rem;border:1px solid #d0d3d6;border-radius:8px;background:#fff;font:inherit;cursor:pointer}
button:hover,button:focus{border-color:#3370ff;outline:2px solid #3370ff33}.muted{color:#646a73;font-size:.85rem}
.err{color:#b42318;background:#fef3f2;padding:.75rem;border-radius:8px}
</style></head><body><main>
<p class="sim">模拟器 Simulator — not the real {{.Platform}}</p>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}{{if .ErrCode}} (errcode {{.ErrCode}}){{end}}</p>
{{if .Back}}<p><a id="back" href="{{.Back}}">返回应用 · Back to the app</a></p>{{else}}<p class="muted" id="back">请关闭此页，回到应用重新登录。Close this page and sign in again from the app.</p>{{end}}{{else}}
<img src="{{.QR}}" alt="QR code to scan with the {{.Platform}} app">
<p class="muted">Scan with the {{.Platform}} app, or choose who scans:</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="ticket" value="{{.Ticket}}">
<ul>{{range .People}}<li><button type="submit" name="user" value="{{.ID}}">{{.Name}} <span class="muted">{{.ID}}{{if .Dept}} · {{.Dept}}{{end}}</span></button></li>{{end}}
{{if .Outsider}}<li><button type="submit" name="user" value="@outsider">外部人员 <span class="muted">someone outside the corp</span></button></li>{{end}}
<li><button type="submit" name="user" value="@deny">拒绝 <span class="muted">decline</span></button></li></ul></form>{{end}}
</main></body></html>`))

// RenderScan writes the scan page.
func RenderScan(w http.ResponseWriter, status int, p ScanPage) {
	var buf bytes.Buffer
	if err := scanTmpl.Execute(&buf, p); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Derive makes a reproducible credential of n characters from [A-Za-z0-9] out of a seed and a
// label, so a simulator started twice with one seed hands out the same IDs and secrets.
func Derive(seed uint64, label string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, n)
	for block := 0; len(out) < n; block++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("qiao-sim/%d/%s/%d", seed, label, block)))
		for _, b := range sum {
			if len(out) == n {
				break
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
		}
	}
	return string(out)
}

// DeriveHex is Derive over lowercase hex digits.
func DeriveHex(seed uint64, label string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("qiao-sim/%d/%s", seed, label)))
	return hex.EncodeToString(sum[:])[:n]
}
