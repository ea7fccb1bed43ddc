package console

import "testing"

// TestProvisionWordsTranslated: the actions, counts and triggers the provisioning screens show
// through t have their Chinese (the templates' literals are TestEveryTextIsTranslated's).
func TestProvisionWordsTranslated(t *testing.T) {
	for _, w := range provisionWords {
		if _, ok := zhText[w]; !ok {
			t.Errorf("no Chinese for %q", w)
		}
	}
}
