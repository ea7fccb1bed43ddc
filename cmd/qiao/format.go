package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/qiao-gateway/qiao/directory/dirsync"
)

// countWords are the sync actions in the order a summary names them, as the summary says them.
var countWords = []struct{ action, word string }{
	{dirsync.ActCreate, "created"},
	{dirsync.ActUpdate, "updated"},
	{dirsync.ActMove, "moved"},
	{dirsync.ActDelete, "deleted"},
	{dirsync.ActUnchanged, "unchanged"},
	{dirsync.ActSkip, "skipped"},
	{dirsync.ActError, "errors"},
}

// formatCounts writes a task's counts by action as "created 209, updated 1"; no count at all is
// "no changes".
func formatCounts(counts map[string]int) string {
	var parts []string
	known := map[string]bool{}
	for _, w := range countWords {
		known[w.action] = true
		if n := counts[w.action]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", w.word, n))
		}
	}
	var other []string
	for a, n := range counts {
		if !known[a] && n != 0 {
			other = append(other, fmt.Sprintf("%s %d", a, n))
		}
	}
	sort.Strings(other)
	parts = append(parts, other...)
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}
