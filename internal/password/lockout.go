package password

import (
	"encoding/hex"
	"strings"
)

// LockoutKey is the state-store counter of a person's failed password logons in an enterprise
// (the broker's password form counts them per username as typed, case-folded; at the limit the
// account is locked until the window ends). Deleting it unlocks the account.
func LockoutKey(enterpriseID, username string) string {
	return "pwuser:" + hex.EncodeToString([]byte(enterpriseID+"\x00"+strings.ToLower(username)))
}
