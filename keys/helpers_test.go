package keys

import (
	"encoding/base64"
	"math/big"
)

type bigInt = big.Int

func decodeB64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
