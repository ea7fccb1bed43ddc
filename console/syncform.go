package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The sync settings' lists on a source's edit page: the partial scope chosen from the platform's
// department tree (read live), and the field mappings and extended fields as rows to add, edit
// and remove. All of it is plain form inputs, so it works without the script.

// scopeNode is one department of the scope picker's tree.
type scopeNode struct {
	ID, Name string
	Checked  bool
	// Open: its children show at first (near the top, or it or a descendant is chosen).
	Open     bool
	Children []*scopeNode
}

// mappingRow is one field mapping of the form; extRow one extended field.
type mappingRow struct {
	Upstream, Local string
	Remove          bool
	N               int // its number on the page, for the inputs' labels
}

type extRow struct {
	Name   string
	Remove bool
	N      int
}

// maxRows bounds the rows read from a posted form (the API takes at most 100 of each).
const maxRows = 101

// syncLists is the sync settings' lists as the form shows them.
type syncLists struct {
	All    bool     // the whole organisation
	Chosen []string // upstream department IDs
	Maps   []mappingRow
	Exts   []extRow
}

// syncListsOf reads the lists of a stored source.
func syncListsOf(s map[string]any) syncLists {
	sy, _ := s["sync"].(map[string]any)
	var l syncLists
	for _, v := range list(sy["scope"]) {
		l.Chosen = append(l.Chosen, str(v))
	}
	l.All = len(l.Chosen) == 0
	for _, v := range list(sy["field_mappings"]) {
		m, _ := v.(map[string]any)
		l.Maps = append(l.Maps, mappingRow{Upstream: str(m["upstream"]), Local: str(m["local"])})
	}
	for _, v := range list(sy["extended_fields"]) {
		l.Exts = append(l.Exts, extRow{Name: str(v)})
	}
	return l
}

func list(v any) []any { l, _ := v.([]any); return l }

// syncListsPosted reads the lists of a posted edit form: the checked departments (and any typed
// IDs, when the tree could not be read), and every row that has something in it.
func syncListsPosted(r *http.Request) syncLists {
	l := syncLists{All: r.PostFormValue("sync.scope_mode") == "all"}
	ids := append([]string{}, r.PostForm["sync.scope"]...)
	ids = append(ids, lines(r.PostFormValue("sync.scope_ids"))...)
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(l.Chosen, id) {
			l.Chosen = append(l.Chosen, id)
		}
	}
	for i := 0; i < maxRows; i++ {
		p := "sync.map." + strconv.Itoa(i) + "."
		up, local := strings.TrimSpace(r.PostFormValue(p+"upstream")), strings.TrimSpace(r.PostFormValue(p+"local"))
		if up != "" || local != "" {
			l.Maps = append(l.Maps, mappingRow{Upstream: up, Local: local, Remove: r.PostFormValue(p+"remove") == "on"})
		}
		e := "sync.ext." + strconv.Itoa(i)
		if n := strings.TrimSpace(r.PostFormValue(e)); n != "" {
			l.Exts = append(l.Exts, extRow{Name: n, Remove: r.PostFormValue(e+".remove") == "on"})
		}
	}
	return l
}

// apply puts the lists into the sync part of a write. A row marked for removal is left out.
// It answers the form's own errors (a half-filled mapping, "chosen" with nothing chosen).
func (l syncLists) apply(s map[string]any) map[string]string {
	errs := map[string]string{}
	scope := []string{}
	if !l.All {
		scope = append(scope, l.Chosen...)
		if len(scope) == 0 {
			errs["sync.scope"] = "Choose at least one department, or the whole organisation."
		}
	}
	s["scope"] = scope
	maps := []map[string]string{}
	for _, m := range l.Maps {
		if m.Remove {
			continue
		}
		if m.Upstream == "" || m.Local == "" {
			errs["sync.field_mappings"] = "A mapping needs both the upstream attribute and the local field."
			continue
		}
		maps = append(maps, map[string]string{"upstream": m.Upstream, "local": m.Local})
	}
	s["field_mappings"] = maps
	exts := []string{}
	for _, e := range l.Exts {
		if !e.Remove {
			exts = append(exts, e.Name)
		}
	}
	s["extended_fields"] = exts
	return errs
}

// show puts the lists on the edit page: the scope picker's tree read live from the platform
// (or, when the platform refuses, why, and the chosen IDs to edit as text), the rows with one
// empty row each to add.
func (c *Console) show(r *http.Request, p *page, srcID string, l syncLists) {
	p.D["ScopeAll"] = l.All
	maps := append(slices.Clone(l.Maps), mappingRow{})
	for i := range maps {
		maps[i].N = i + 1
	}
	exts := append(slices.Clone(l.Exts), extRow{})
	for i := range exts {
		exts[i].N = i + 1
	}
	p.D["Maps"], p.D["Exts"] = maps, exts
	p.D["ScopeIDs"] = strings.Join(l.Chosen, "\n")
	up, prob := c.get(r, ep(p.Ent, "sources", srcID, "upstream-departments"), nil)
	if prob != nil {
		p.D["TreeError"] = prob.Detail
		return
	}
	tree, missing := scopeTree(items(up), l.Chosen)
	p.D["Tree"], p.D["Missing"] = tree, missing
}

// scopeTree nests the platform's departments under their parents, in the platform's order,
// marking the chosen ones; missing are chosen IDs the platform no longer has (kept checked, so
// saving does not drop them unnoticed).
func scopeTree(depts []map[string]any, chosen []string) (roots []*scopeNode, missing []string) {
	nodes := map[string]*scopeNode{}
	for _, d := range depts {
		id := str(d["id"])
		nodes[id] = &scopeNode{ID: id, Name: str(d["name"]), Checked: slices.Contains(chosen, id)}
	}
	for _, d := range depts {
		n, parent := nodes[str(d["id"])], nodes[str(d["parent_id"])]
		if parent == nil || parent == n {
			roots = append(roots, n)
		} else {
			parent.Children = append(parent.Children, n)
		}
	}
	seen := map[*scopeNode]bool{}
	var open func(n *scopeNode, depth int) bool // whether n or a descendant is chosen
	open = func(n *scopeNode, depth int) bool {
		seen[n] = true
		below := false
		for _, ch := range n.Children {
			if open(ch, depth+1) {
				below = true
			}
		}
		n.Open = depth == 0 || below || n.Checked
		return n.Checked || below
	}
	for _, n := range roots {
		open(n, 0)
	}
	for _, id := range chosen {
		if n := nodes[id]; n == nil || !seen[n] {
			missing = append(missing, id)
		}
	}
	return roots, missing
}
