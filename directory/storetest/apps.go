package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

func testClientsAndServiceProviders(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	c := &directory.OIDCClient{EnterpriseID: "acme", ID: "sase-client", Name: "SASE", Type: directory.ClientNative, AuthMethod: "none",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"}, IDTokenAlg: "ES256",
		LaunchURL: "https://sase.example/start"}
	if err := s.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetClient(ctx, "acme", "sase-client")
	if err != nil || got.Type != directory.ClientNative || got.RedirectURIs[0] != "http://127.0.0.1/callback" || got.IDTokenAlg != "ES256" || got.Secret != "" ||
		got.LaunchURL != "https://sase.example/start" {
		t.Fatalf("client = %+v, %v", got, err)
	}
	if err := s.PutClient(ctx, &directory.OIDCClient{EnterpriseID: "acme", ID: "x", Type: "weird"}); err == nil {
		t.Fatal("unknown client type accepted")
	}
	sp := &directory.ServiceProvider{EnterpriseID: "acme", EntityID: "https://sp.example.com/metadata", Name: "SP",
		MetadataXML: "<EntityDescriptor/>", NameIDFormat: "persistent", Attributes: map[string]string{"mail": "email"}, SignAssertion: true}
	if err := s.PutServiceProvider(ctx, sp); err != nil {
		t.Fatal(err)
	}
	gsp, err := s.GetServiceProvider(ctx, "acme", sp.EntityID)
	if err != nil || gsp.Attributes["mail"] != "email" || !gsp.SignAssertion || gsp.SignResponse {
		t.Fatalf("sp = %+v, %v", gsp, err)
	}
	if l, _ := s.ListServiceProviders(ctx, "acme"); len(l) != 1 {
		t.Fatalf("ListServiceProviders = %d", len(l))
	}
	if l, _ := s.ListClients(ctx, "acme"); len(l) != 1 {
		t.Fatalf("ListClients = %d", len(l))
	}
	// The lifecycle flags round-trip.
	c.Disabled, c.Managed = true, directory.ManagedByConfig
	sp.Disabled, sp.Managed = true, directory.ManagedByConfig
	if err := s.PutClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.PutServiceProvider(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClient(ctx, "acme", c.ID); !got.Disabled || got.Managed != directory.ManagedByConfig {
		t.Fatalf("client flags lost: %+v", got)
	}
	if got, _ := s.GetServiceProvider(ctx, "acme", sp.EntityID); !got.Disabled || got.Managed != directory.ManagedByConfig {
		t.Fatalf("service provider flags lost: %+v", got)
	}
	if err := s.DeleteServiceProvider(ctx, "acme", sp.EntityID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "acme", "sase-client"); err != nil {
		t.Fatal(err)
	}
}

func testRefreshTokens(t *testing.T, newStore NewStore) {
	s := newStore(t)
	seed(t, s, "acme")
	now := time.Now()
	mk := func(id, fam, user string, exp time.Time) *directory.RefreshToken {
		return &directory.RefreshToken{ID: id, FamilyID: fam, EnterpriseID: "acme", ClientID: "c", UserID: user,
			Scopes: []string{"openid", "offline_access"}, AMR: []string{"wecom_qr"}, AuthTime: now, ExpiresAt: exp, SourceID: "wecom", SessionID: "sid-" + id}
	}
	for _, tok := range []*directory.RefreshToken{
		mk("t1", "f1", "u1", now.Add(time.Hour)), mk("t2", "f1", "u1", now.Add(time.Hour)),
		mk("t3", "f2", "u2", now.Add(time.Hour)), mk("old", "f3", "u3", now.Add(-time.Hour)),
	} {
		if err := s.CreateRefreshToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetRefreshToken(ctx, "t1")
	if err != nil || got.Scopes[1] != "offline_access" || got.AMR[0] != "wecom_qr" || !got.RotatedAt.IsZero() ||
		got.SourceID != "wecom" || got.SessionID != "sid-t1" {
		t.Fatalf("token = %+v, %v", got, err)
	}
	// Concurrent rotation: exactly one wins, and only its successor is stored, whole.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.RotateRefreshToken(ctx, "t1", time.Now(), mk(fmt.Sprintf("t1-next-%d", i), "f1", "u1", now.Add(2*time.Hour)))
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, directory.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d rotations of one token succeeded", wins.Load())
	}
	if got, err := s.GetRefreshToken(ctx, "t1"); err != nil || got.RotatedAt.IsZero() {
		t.Fatalf("the rotated token = %+v, %v; want rotated_at set", got, err)
	}
	successors := 0
	for i := 0; i < 20; i++ {
		got, err := s.GetRefreshToken(ctx, fmt.Sprintf("t1-next-%d", i))
		if errors.Is(err, directory.ErrNotFound) {
			continue
		}
		if err != nil || got.FamilyID != "f1" || got.EnterpriseID != "acme" || got.ClientID != "c" || got.UserID != "u1" ||
			len(got.Scopes) != 2 || got.Scopes[1] != "offline_access" || got.AMR[0] != "wecom_qr" || got.SourceID != "wecom" ||
			got.SessionID != fmt.Sprintf("sid-t1-next-%d", i) || !got.RotatedAt.IsZero() || !got.RevokedAt.IsZero() ||
			got.ExpiresAt.Sub(now.Add(2*time.Hour)).Abs() > time.Millisecond || got.AuthTime.Sub(now).Abs() > time.Millisecond {
			t.Fatalf("successor %d = %+v, %v", i, got, err)
		}
		successors++
	}
	if successors != 1 {
		t.Fatalf("%d successors stored for one rotation; want 1", successors)
	}
	if err := s.RotateRefreshToken(ctx, "missing", now, mk("missing-next", "f9", "u1", now.Add(time.Hour))); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rotating a missing token: %v", err)
	}
	if _, err := s.GetRefreshToken(ctx, "missing-next"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rotating a missing token stored a successor: %v", err)
	}
	if n, err := s.RevokeRefreshFamily(ctx, "f1", now); err != nil || n != 3 {
		t.Fatalf("RevokeRefreshFamily = %d, %v; want 3 (t1, t2 and t1's successor)", n, err)
	}
	if err := s.RotateRefreshToken(ctx, "t2", now, mk("t2-next", "f1", "u1", now.Add(time.Hour))); !errors.Is(err, directory.ErrConflict) {
		t.Fatalf("rotating a revoked token: %v", err)
	}
	if _, err := s.GetRefreshToken(ctx, "t2-next"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("rotating a revoked token stored a successor: %v", err)
	}
	if cs, err := s.RefreshTokenClients(ctx, "acme", "u2", now); err != nil || len(cs) != 1 || cs[0] != "c" {
		t.Fatalf("RefreshTokenClients = %v, %v", cs, err)
	}
	if cs, _ := s.RefreshTokenClients(ctx, "acme", "u3", now); len(cs) != 0 {
		t.Fatalf("an expired token's client is listed: %v", cs)
	}
	if n, err := s.RevokeUserRefreshTokens(ctx, "acme", "u2", now); err != nil || n != 1 {
		t.Fatalf("RevokeUserRefreshTokens = %d, %v", n, err)
	}
	if cs, _ := s.RefreshTokenClients(ctx, "acme", "u2", now); len(cs) != 0 {
		t.Fatalf("a revoked token's client is listed: %v", cs)
	}
	if n, err := s.DeleteExpiredRefreshTokens(ctx, now); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v", n, err)
	}
	// By source: only the grants that began with a login through that source end.
	for _, tok := range []*directory.RefreshToken{mk("s1", "g1", "u4", now.Add(time.Hour)), mk("s2", "g2", "u4", now.Add(time.Hour))} {
		if tok.ID == "s2" {
			tok.SourceID = "dingtalk"
		}
		if err := s.CreateRefreshToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RevokeUserSourceRefreshTokens(ctx, "acme", "u4", "wecom", now); err != nil || n != 1 {
		t.Fatalf("RevokeUserSourceRefreshTokens = %d, %v", n, err)
	}
	if got, _ := s.GetRefreshToken(ctx, "s1"); got.RevokedAt.IsZero() {
		t.Fatal("the wecom grant survived")
	}
	if got, _ := s.GetRefreshToken(ctx, "s2"); !got.RevokedAt.IsZero() {
		t.Fatal("the dingtalk grant was revoked with the wecom one")
	}
	// By source for everyone (a closed source), and by client (a disabled app).
	for _, tok := range []*directory.RefreshToken{mk("w1", "g3", "u5", now.Add(time.Hour)), mk("w2", "g4", "u6", now.Add(time.Hour)),
		mk("d1", "g5", "u5", now.Add(time.Hour))} {
		if tok.ID == "d1" {
			tok.SourceID, tok.ClientID = "dingtalk", "other"
		}
		if err := s.CreateRefreshToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.CountSourceRefreshTokens(ctx, "acme", "wecom"); err != nil || n != 2 {
		t.Fatalf("CountSourceRefreshTokens = %d, %v (want the two live wecom grants)", n, err)
	}
	if n, err := s.RevokeSourceRefreshTokens(ctx, "acme", "wecom", now); err != nil || n != 2 {
		t.Fatalf("RevokeSourceRefreshTokens = %d, %v (want the two live wecom grants)", n, err)
	}
	if got, _ := s.GetRefreshToken(ctx, "d1"); !got.RevokedAt.IsZero() {
		t.Fatal("closing wecom revoked a dingtalk grant")
	}
	if n, err := s.RevokeClientRefreshTokens(ctx, "acme", "other", now); err != nil || n != 1 {
		t.Fatalf("RevokeClientRefreshTokens = %d, %v", n, err)
	}
	if got, _ := s.GetRefreshToken(ctx, "d1"); got.RevokedAt.IsZero() {
		t.Fatal("disabling the client left its grant")
	}
}
