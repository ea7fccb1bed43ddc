// Command samlbench measures SP-initiated SAML SSO for a signed-in person: each request is a fresh
// AuthnRequest (HTTP-Redirect binding) from a service provider, answered with a Response whose
// Response and Assertion are both RSA-SHA256 signed. In the same run it measures the raw
// RSA-SHA256 signing rate of the same key, for comparison (each response takes two signatures).
//
//	go run ./bench/samlbench -c 32 -d 10s
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	csaml "github.com/crewjam/saml"

	"github.com/qiao-gateway/qiao/bench/benchkit"
	"github.com/qiao-gateway/qiao/internal/config"
	"github.com/qiao-gateway/qiao/keys"
)

func main() {
	conc := flag.Int("c", 32, "concurrent browsers")
	dur := flag.Duration("d", 10*time.Second, "duration of the measurement")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the run here")
	flag.Parse()
	stopCPU := benchkit.CPUProfile(*prof)
	defer stopCPU()
	if err := run(*conc, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "samlbench:", err)
		stopCPU()
		os.Exit(1)
	}
}

func run(conc int, dur time.Duration) error {
	sp := newSP()
	spMD := sp.Metadata()
	var signing []csaml.KeyDescriptor
	for _, kd := range spMD.SPSSODescriptors[0].KeyDescriptors {
		if kd.Use == "signing" {
			signing = append(signing, kd) // no encryption key: assertions are signed, not encrypted
		}
	}
	spMD.SPSSODescriptors[0].KeyDescriptors = signing
	md, _ := xml.Marshal(spMD)
	d, err := benchkit.StartDemo("samlbench", func(cfg *config.Config) {
		cfg.Enterprises[0].ServiceProviders = append(cfg.Enterprises[0].ServiceProviders,
			config.ServiceProvider{EntityID: sp.EntityID, Name: "bench", Metadata: string(md)})
	})
	if err != nil {
		return err
	}
	defer d.Close()
	gw, creds, base := d.GW, d.Creds, d.Base
	resp, err := http.Get(base + "/e/demo/saml/metadata")
	if err != nil {
		return err
	}
	var idpMD csaml.EntityDescriptor
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := xml.Unmarshal(b, &idpMD); err != nil {
		return fmt.Errorf("IdP metadata: %w", err)
	}
	sp.IDPMetadata = &idpMD

	// One signed-in browser per worker, as real people are.
	tr := &http.Transport{MaxIdleConnsPerHost: conc * 2}
	browsers := make([]*http.Client, conc)
	for i := range browsers {
		browsers[i] = benchkit.Browser(tr)
		if err := benchkit.PasswordLogin(browsers[i], base, creds.Password); err != nil {
			return err
		}
	}
	fmt.Printf("samlbench: concurrency %d, %v, SP-initiated HTTP-Redirect, Response and Assertion signed (RSA-SHA256), SQLite and memory state\n", conc, dur)
	res := benchkit.Measure("SP-initiated SSO", conc, dur, func(w int) error {
		req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(csaml.HTTPRedirectBinding), csaml.HTTPRedirectBinding, csaml.HTTPPostBinding)
		if err != nil {
			return err
		}
		u, err := req.Redirect("", sp)
		if err != nil {
			return err
		}
		resp, err := browsers[w].Get(u.String())
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `name="SAMLResponse"`) {
			return fmt.Errorf("no response form: %s", resp.Status)
		}
		return nil
	})
	fmt.Println(res)

	k, err := gw.Keys.Signing(keys.SAML)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte("<ds:SignedInfo>...</ds:SignedInfo>"))
	sign := benchkit.Measure("raw RSA-SHA256 sign", conc, dur, func(int) error {
		_, err := k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		return err
	})
	fmt.Println(sign)
	fmt.Printf("assertions/s ÷ signatures/s = %.2f (each response carries two signatures)\n", res.Rate()/sign.Rate())
	benchkit.Setup = fmt.Sprintf("SQLite + memory, c=%d", conc)
	res.Name = "SP-initiated SSO"
	benchkit.Emit("samlbench", res, 0)
	benchkit.EmitRow(benchkit.Row{Driver: "samlbench", Name: "raw RSA-SHA256 sign", Figure: fmt.Sprintf("%.0f/s", sign.Rate()),
		Detail: fmt.Sprintf("assertions ÷ signatures %.2f", res.Rate()/sign.Rate())})
	return nil
}

func newSP() *csaml.ServiceProvider {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	mu, _ := url.Parse("https://bench-sp.test/metadata")
	acs, _ := url.Parse("https://bench-sp.test/acs")
	return &csaml.ServiceProvider{EntityID: mu.String(), Key: key, Certificate: cert, MetadataURL: *mu, AcsURL: *acs}
}
