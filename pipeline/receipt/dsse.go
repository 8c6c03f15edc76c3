package receipt

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PayloadType of a receipt's envelope: an in-toto statement.
const PayloadType = "application/vnd.in-toto+json"

// AuditPayloadType is a signed audit report's (audit --sign-key): the
// report's JSON as audit --format json writes it.
const AuditPayloadType = "application/vnd.pgattest.audit+json"

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an envelope; KeyID is a hint, never
// trusted.
type Signature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"` // standard base64
}

// PAE is DSSE's pre-authentication encoding, what is signed:
// "DSSEv1" SP len(type) SP type SP len(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	var b strings.Builder
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return []byte(b.String())
}

// Sign wraps payload in an envelope signed by s.
func (s *Signer) Sign(payloadType string, payload []byte) *Envelope {
	sig := ed25519.Sign(s.key, PAE(payloadType, payload))
	return &Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []Signature{{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(sig)}}}
}

// decode64 takes standard or URL-safe base64, padded or not, as DSSE asks
// of verifiers.
func decode64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// MismatchError is a receipt that does not check: evidence, not a usage
// error.
type MismatchError struct{ What string }

func (e *MismatchError) Error() string { return e.What }

// Open parses an envelope and checks its signature against the trusted
// keys (whatever key id it names): the payload, and the id of the key that
// signed it. An envelope no trusted key signed is a *MismatchError.
func Open(b []byte, trusted []ed25519.PublicKey) (payload []byte, keyID string, err error) {
	return OpenAs(b, PayloadType, trusted)
}

// OpenAs is Open for an envelope of the payload type given.
func OpenAs(b []byte, payloadType string, trusted []ed25519.PublicKey) (payload []byte, keyID string, err error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, "", &MismatchError{What: "not a DSSE envelope: " + err.Error()}
	}
	if env.PayloadType != payloadType {
		return nil, "", &MismatchError{What: fmt.Sprintf("payload type %q, not %q", env.PayloadType, payloadType)}
	}
	payload, err = decode64(env.Payload)
	if err != nil {
		return nil, "", &MismatchError{What: "the payload is not base64"}
	}
	if len(env.Signatures) == 0 {
		return nil, "", &MismatchError{What: "unsigned: the envelope holds no signature"}
	}
	pae := PAE(env.PayloadType, payload)
	for _, s := range env.Signatures {
		sig, err := decode64(s.Sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			continue
		}
		for _, k := range trusted {
			if ed25519.Verify(k, pae, sig) {
				return payload, KeyID(k), nil
			}
		}
	}
	return nil, "", &MismatchError{What: "no signature by a trusted key (signed by another key, or altered)"}
}

// PayloadTypeOf is the payload type an envelope says it holds ("" when
// it is not one).
func PayloadTypeOf(b []byte) string {
	var env Envelope
	if json.Unmarshal(b, &env) != nil {
		return ""
	}
	return env.PayloadType
}

// ProofFailed marks a receipt that does not check as evidence (exit 3).
func (e *MismatchError) ProofFailed() bool { return true }
