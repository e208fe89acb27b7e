// Command go-verifier checks the Huduma Registry's checkpoints and proofs with Go's
// standard implementations, as they are: golang.org/x/mod/sumdb/note opens the signed
// checkpoint with the published verifier key, and golang.org/x/mod/sumdb/tlog
// recomputes the RFC 6962 tree over the exported records and checks every inclusion
// and consistency proof the registry produced. Nobody at the registry wrote either.
//
// Usage: go run main.go DIR
// DIR holds log.bin (u32 BE length + record bytes), checkpoint.note, verifier.key and
// proofs.json, as `cargo run -p registry-core --example tlog_fixture -- DIR` writes.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index    int64    `json:"index"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

type consistency struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	Hashes  []string `json:"hashes"`
}

type proofs struct {
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-verifier: "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

func decodeHashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			fail("bad hash %q", s)
		}
		copy(out[i][:], b)
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: go-verifier DIR")
	}
	dir := os.Args[1]

	// The signed note, opened by the standard note package.
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read(dir + "/verifier.key"))))
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open(read(dir+"/checkpoint.note"), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint note: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint body %q does not name the origin %q", n.Text, verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("tree size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("root hash: %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)

	// The records, and the tree over them as tlog stores it.
	data := read(dir + "/log.bin")
	var records [][]byte
	for at := 0; at < len(data); {
		length := int(binary.BigEndian.Uint32(data[at : at+4]))
		records = append(records, data[at+4:at+4+length])
		at += 4 + length
	}
	if int64(len(records)) < size {
		fail("the export has %d records; the checkpoint covers %d", len(records), size)
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, record := range records {
		hashes, err := tlog.StoredHashes(int64(i), record, reader)
		if err != nil {
			fail("storing record %d: %v", i, err)
		}
		stored = append(stored, hashes...)
	}
	treeHash := func(n int64) tlog.Hash {
		h, err := tlog.TreeHash(n, reader)
		if err != nil {
			fail("tree hash of %d: %v", n, err)
		}
		return h
	}
	if treeHash(size) != root {
		fail("the records do not produce the checkpoint's root")
	}

	// Every proof the registry produced, checked by tlog.
	var p proofs
	if err := json.Unmarshal(read(dir+"/proofs.json"), &p); err != nil {
		fail("proofs.json: %v", err)
	}
	for _, in := range p.Inclusion {
		proof := tlog.RecordProof(decodeHashes(in.Hashes))
		leaf := tlog.RecordHash(records[in.Index])
		if err := tlog.CheckRecord(proof, in.TreeSize, treeHash(in.TreeSize), in.Index, leaf); err != nil {
			fail("inclusion of %d in %d: %v", in.Index, in.TreeSize, err)
		}
	}
	for _, c := range p.Consistency {
		proof := tlog.TreeProof(decodeHashes(c.Hashes))
		if err := tlog.CheckTree(proof, c.NewSize, treeHash(c.NewSize), c.OldSize, treeHash(c.OldSize)); err != nil {
			fail("consistency of %d with %d: %v", c.OldSize, c.NewSize, err)
		}
	}
	fmt.Printf("ok: note by %s opens; %d records produce the signed root of size %d; %d inclusion and %d consistency proofs check with golang.org/x/mod/sumdb/tlog\n",
		verifier.Name(), len(records), size, len(p.Inclusion), len(p.Consistency))
}
