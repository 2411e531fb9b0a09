// Command checknote verifies a custodia checkpoint with the Go reference implementation of
// signed notes and transparency-log trees (golang.org/x/mod/sumdb/note and .../tlog), the
// code the Go checksum database and its clients run.
//
// Usage: checknote VKEY-FILE NOTE-FILE [LEAVES-FILE]
//
// It reads a verifier key ("<name>+<hex key id>+<base64 key>") and a signed note, opens the
// note with note.Open against that one key, parses the checkpoint body (origin line, then
// the size and root hash as tlog.ParseTree reads them) and prints the origin, the size and
// the root in base64, one per line. With LEAVES-FILE (one record per line) it also computes
// the RFC 6962 root of those records (at least one) with tlog and fails unless size and root
// match.
// It exits 1 with a message on stderr when anything does not check out.
//
// Build in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run tests/interop/checknote/main.go ...
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "checknote: "+format+"\n", args...)
	os.Exit(1)
}

// checkpoint splits a tlog-checkpoint body into its origin and its tree. tlog.ParseTree
// reads the go.sum database's own checkpoints, whose origin is fixed, so the origin line is
// checked here and the rest (size, root, extension lines) handed to ParseTree.
func checkpoint(text string) (string, tlog.Tree) {
	origin, rest, ok := strings.Cut(text, "\n")
	if !ok || origin == "" {
		fail("checkpoint has no origin line")
	}
	tree, err := tlog.ParseTree([]byte("go.sum database tree\n" + rest))
	if err != nil {
		fail("checkpoint body: %v", err)
	}
	return origin, tree
}

// checkLeaves fails unless tree is the RFC 6962 tree of the records in path.
func checkLeaves(path string, tree tlog.Tree) {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	if len(data) == 0 {
		// RFC 6962 hashes the empty tree to SHA-256(""), tlog to zeros: not comparable.
		fail("leaves file is empty")
	}
	records := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = stored[x]
		}
		return out, nil
	})
	for i, r := range records {
		h, err := tlog.StoredHashes(int64(i), r, reader)
		if err != nil {
			fail("stored hashes: %v", err)
		}
		stored = append(stored, h...)
	}
	root, err := tlog.TreeHash(int64(len(records)), reader)
	if err != nil {
		fail("tree hash: %v", err)
	}
	if tree.N != int64(len(records)) || tree.Hash != root {
		fail("tree (%d, %v) is not the tree of the %d records (root %v)", tree.N, tree.Hash, len(records), root)
	}
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		fail("usage: checknote VKEY-FILE NOTE-FILE [LEAVES-FILE]")
	}
	vkey, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("%v", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note: %v", err)
	}
	origin, tree := checkpoint(n.Text)
	if len(os.Args) == 4 {
		checkLeaves(os.Args[3], tree)
	}
	fmt.Printf("%s\n%d\n%s\n", origin, tree.N, tree.Hash)
}
