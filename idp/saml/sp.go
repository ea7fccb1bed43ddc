package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	csaml "github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"

	"github.com/qiao-gateway/qiao/directory"
)

// serviceProvider is a registered SP with its parsed metadata.
type serviceProvider struct {
	d  *directory.ServiceProvider
	md *csaml.EntityDescriptor
	// signing are the certificates the SP signs requests with.
	signing []*x509.Certificate
	// encryption is the certificate assertions are encrypted to, if the SP has one.
	encryption *x509.Certificate
	fetched    time.Time // when URL metadata was last fetched (or a fetch last failed)
	checked    time.Time // when the SP's row was last read
}

func (sp *serviceProvider) descriptor() *csaml.SPSSODescriptor {
	if len(sp.md.SPSSODescriptors) == 0 {
		return nil
	}
	return &sp.md.SPSSODescriptors[0]
}

// signsRequests says whether the SP declares that it signs its AuthnRequests.
func (sp *serviceProvider) signsRequests() bool {
	d := sp.descriptor()
	return d != nil && d.AuthnRequestsSigned != nil && *d.AuthnRequestsSigned
}

// spCache keeps parsed metadata; URL metadata is refetched when older than metadataRefresh.
type spCache struct {
	mu sync.Mutex
	m  map[string]*serviceProvider
}

const (
	metadataRefresh = time.Hour
	maxMetadata     = 1 << 20
)

// ErrUnknownSP is returned for an entity ID no enterprise registered.
var ErrUnknownSP = errors.New("unknown service provider")

// errSPDisabled refuses the requests of a registered SP an administrator disabled: it is not
// trusted with a response, so the person gets qiao's error page.
var errSPDisabled = &requestError{Status: http.StatusForbidden, Public: "this service provider is disabled by the administrator"}

// activeSP is serviceProvider for a request that would send the SP a response: a disabled SP is
// refused with errSPDisabled. (Its logout requests are still honoured, and the logouts of its
// sessions still sent: they end access rather than grant it.)
func (p *Provider) activeSP(ctx context.Context, ent, entityID string) (*serviceProvider, error) {
	sp, err := p.serviceProvider(ctx, ent, entityID)
	if err != nil {
		return nil, err
	}
	if sp.d.Disabled {
		return nil, errSPDisabled
	}
	return sp, nil
}

// spRecheck is how long a looked-up SP is used before its row is read again: a request validates
// and answers with the same SP several times, and admin changes reach every replica this soon.
const spRecheck = 10 * time.Second

// serviceProvider finds a registered SP of the enterprise and its metadata.
func (p *Provider) serviceProvider(ctx context.Context, ent, entityID string) (*serviceProvider, error) {
	if entityID == "" || len(entityID) > 1024 {
		return nil, ErrUnknownSP
	}
	key := ent + "\x00" + entityID
	now := p.now()
	p.sps.mu.Lock()
	cached := p.sps.m[key]
	p.sps.mu.Unlock()
	if cached != nil && now.Sub(cached.checked) < spRecheck {
		return cached, nil
	}
	d, err := p.Store.GetServiceProvider(ctx, ent, entityID)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, ErrUnknownSP
	}
	if err != nil {
		return nil, fmt.Errorf("service provider %s: %w", entityID, err)
	}
	if cached != nil && cached.d.UpdatedAt.Equal(d.UpdatedAt) && (d.MetadataURL == "" || now.Sub(cached.fetched) < metadataRefresh) {
		return p.keepSP(key, cached, now, cached.fetched), nil
	}
	raw := []byte(d.MetadataXML)
	if d.MetadataURL != "" {
		b, ferr := p.fetchMetadata(ctx, d.MetadataURL)
		if ferr == nil {
			if _, perr := parseSP(d, b); perr != nil {
				ferr = perr // fetched, but not metadata qiao can use
			}
		}
		p.recordFetch(ctx, ent, entityID, d.MetadataURL, b, ferr)
		if ferr != nil {
			if cached != nil && cached.d.MetadataURL == d.MetadataURL {
				// Keep serving the last good metadata; say so once per refresh attempt.
				p.Log.Warn("SAML SP metadata refresh failed; using the last good copy", "enterprise", ent, "sp", entityID, "err", ferr)
				return p.keepSP(key, cached, now, now), nil
			}
			return nil, fmt.Errorf("fetch metadata of %s: %w", entityID, ferr)
		}
		raw = b
	}
	sp, err := parseSP(d, raw)
	if err != nil {
		return nil, err
	}
	return p.keepSP(key, sp, now, now), nil
}

// keepSP caches a copy of sp, checked and fetched at the given times (entries already handed
// out are not changed under their readers).
func (p *Provider) keepSP(key string, sp *serviceProvider, checked, fetched time.Time) *serviceProvider {
	c := *sp
	c.checked, c.fetched = checked, fetched
	p.sps.mu.Lock()
	if p.sps.m == nil || len(p.sps.m) > 10000 {
		p.sps.m = map[string]*serviceProvider{}
	}
	p.sps.m[key] = &c
	p.sps.mu.Unlock()
	return &c
}

func (p *Provider) fetchMetadata(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadata {
		return nil, fmt.Errorf("metadata larger than %d bytes", maxMetadata)
	}
	return b, nil
}

// ParseMetadata parses SP metadata (an EntityDescriptor, or the first one of an
// EntitiesDescriptor) and checks it has what qiao needs: an entity ID and an HTTP-POST ACS.
func ParseMetadata(raw []byte) (*csaml.EntityDescriptor, error) {
	if len(raw) == 0 {
		return nil, errors.New("empty metadata")
	}
	if err := xrv.Validate(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("metadata is not well-formed XML: %w", err)
	}
	var ed csaml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil || ed.EntityID == "" {
		var eds csaml.EntitiesDescriptor
		if err2 := xml.Unmarshal(raw, &eds); err2 != nil || len(eds.EntityDescriptors) == 0 {
			return nil, fmt.Errorf("metadata has no EntityDescriptor: %v", err)
		}
		ed = eds.EntityDescriptors[0]
	}
	if len(ed.SPSSODescriptors) == 0 {
		return nil, errors.New("metadata has no SPSSODescriptor")
	}
	post := false
	for _, acs := range ed.SPSSODescriptors[0].AssertionConsumerServices {
		post = post || acs.Binding == csaml.HTTPPostBinding
	}
	if !post {
		return nil, errors.New("metadata has no AssertionConsumerService with the HTTP-POST binding")
	}
	return &ed, nil
}

// MetadataSummary is what an admin checks in an SP's metadata.
type MetadataSummary struct {
	ACS           []string // assertion consumer service locations
	Encrypted     bool     // assertions to it are encrypted
	SignsRequests bool     // it declares AuthnRequestsSigned
}

// Summarize parses SP metadata as the IdP will and says what it found.
func Summarize(raw []byte) (*MetadataSummary, error) {
	md, err := ParseMetadata(raw)
	if err != nil {
		return nil, err
	}
	sp, err := fromMetadata(&directory.ServiceProvider{EntityID: md.EntityID}, md)
	if err != nil {
		return nil, err
	}
	out := &MetadataSummary{Encrypted: sp.encryption != nil, SignsRequests: sp.signsRequests()}
	for _, a := range sp.descriptor().AssertionConsumerServices {
		out.ACS = append(out.ACS, a.Location)
	}
	return out, nil
}

func parseSP(d *directory.ServiceProvider, raw []byte) (*serviceProvider, error) {
	md, err := ParseMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", d.EntityID, err)
	}
	if md.EntityID != d.EntityID {
		return nil, fmt.Errorf("metadata of %s describes entity %q", d.EntityID, md.EntityID)
	}
	return fromMetadata(d, md)
}

// fromMetadata reads the certificates of parsed metadata.
func fromMetadata(d *directory.ServiceProvider, md *csaml.EntityDescriptor) (*serviceProvider, error) {
	sp := &serviceProvider{d: d, md: md}
	for _, kd := range md.SPSSODescriptors[0].KeyDescriptors {
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			cert, err := parseCert(c.Data)
			if err != nil {
				return nil, fmt.Errorf("metadata of %s: %w", d.EntityID, err)
			}
			if kd.Use == "signing" || kd.Use == "" {
				sp.signing = append(sp.signing, cert)
			}
			// crewjam's rule, kept: a key with no use is for encryption too.
			if (kd.Use == "encryption" || kd.Use == "") && sp.encryption == nil {
				sp.encryption = cert
			}
		}
	}
	return sp, nil
}

var spaces = regexp.MustCompile(`\s+`)

func parseCert(data string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(spaces.ReplaceAllString(data, ""))
	if err != nil {
		return nil, fmt.Errorf("certificate is not base64: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return cert, nil
}

// spProvider adapts the registry to crewjam's ServiceProviderProvider for one enterprise.
type spProvider struct {
	p   *Provider
	ent string
}

func (s spProvider) GetServiceProvider(r *http.Request, id string) (*csaml.EntityDescriptor, error) {
	sp, err := s.p.activeSP(r.Context(), s.ent, id)
	if errors.Is(err, ErrUnknownSP) || errors.Is(err, errSPDisabled) {
		return nil, os.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	return sp.md, nil
}
