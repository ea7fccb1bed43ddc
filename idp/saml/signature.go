package saml

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Signature algorithms accepted on the HTTP-Redirect binding (SHA-1 is not).
var redirectAlgs = map[string]crypto.Hash{
	dsig.RSASHA256SignatureMethod: crypto.SHA256,
	dsig.RSASHA512SignatureMethod: crypto.SHA512,
}

// verifySignature checks m's signature against the SP's certificates, and refuses an unsigned m
// when required. HTTP-Redirect signs the query (SAML bindings §3.4.4.1), over the octets m was
// decoded from; HTTP-POST carries an enveloped XML signature, checked with goxmldsig. A Redirect
// message without a query signature may still carry an XML one (crewjam's SP signs its
// LogoutRequests so), checked like a POST.
func verifySignature(m *message, sp *serviceProvider, required bool) error {
	if m.Query != nil {
		return verifyQuery(m.Query, sp)
	}
	return verifyXML(m.XML, sp, required)
}

func verifyQuery(q *querySignature, sp *serviceProvider) error {
	hash, ok := redirectAlgs[q.Alg]
	if !ok {
		return badRequest("the signature algorithm is not accepted (RSA-SHA256 or RSA-SHA512)", nil)
	}
	var digest []byte
	if hash == crypto.SHA256 {
		d := sha256.Sum256(q.Signed)
		digest = d[:]
	} else {
		d := sha512.Sum512(q.Signed)
		digest = d[:]
	}
	for _, c := range sp.signing {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && rsa.VerifyPKCS1v15(pub, hash, digest, q.Value) == nil {
			return nil
		}
	}
	return badRequest("the message's signature does not verify with the service provider's certificates", nil)
}

func verifyXML(buf []byte, sp *serviceProvider, required bool) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(buf); err != nil || doc.Root() == nil {
		return badRequest("the message is not XML", err)
	}
	var sigEl *etree.Element
	for _, c := range doc.Root().ChildElements() {
		if c.Tag == "Signature" {
			sigEl = c
		}
	}
	if sigEl == nil {
		if required {
			return badRequest("the message is unsigned, and this service provider's must be signed", nil)
		}
		return nil
	}
	if len(sp.signing) == 0 {
		return badRequest("the message is signed, and the service provider's metadata has no signing certificate", nil)
	}
	vctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: append([]*x509.Certificate(nil), sp.signing...)})
	vctx.IdAttribute = "ID"
	if _, err := vctx.Validate(doc.Root()); err != nil {
		return badRequest("the message's signature does not verify with the service provider's certificates", err)
	}
	return nil
}
