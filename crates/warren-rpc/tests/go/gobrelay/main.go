// The Go half of the Rust -> Go -> Rust property test of warren's gob codec: reads a gob stream
// of Wide values (written by warren's encoder) from stdin, decodes each into the Go struct a Go
// programmer would write for the serde types of crates/warren-rpc/tests/go_gob.rs, and writes
// each back with Go's own encoder to stdout. Any value Go cannot decode ends it with an error
// naming the value.
//
// Usage: gobrelay < warren.gob > go.gob
package main

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"io"
	"os"
)

type Leaf struct {
	N  int64
	U  uint64
	F  float64
	S  string
	Ok bool
}

type Mid struct {
	Name   string
	Leaves []Leaf
	ByKey  map[string]Leaf
	Raw    []byte
}

type Wide struct {
	Big     int64
	Small   int32
	Count   uint64
	Byte    uint8
	UserID  uint32
	Ratio   float64
	Single  float32
	Text    string
	Blob    []byte
	Flag    bool
	Ints    []int64
	Floats  []float64
	Weights map[string]float64
	Words   []string
	Blobs   [][]byte
	Scores  map[string]int64
	Index   map[int64]string
	Nested  [][]int64
	Inner   Mid
	Opt     *Leaf
	MaybeN  *int64
	MaybeS  *string
}

func main() {
	in := gob.NewDecoder(bufio.NewReader(os.Stdin))
	w := bufio.NewWriter(os.Stdout)
	out := gob.NewEncoder(w)
	n := 0
	for ; ; n++ {
		var v Wide
		if err := in.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "gobrelay: value %d: decode: %v\n", n, err)
			os.Exit(1)
		}
		if err := out.Encode(&v); err != nil {
			fmt.Fprintf(os.Stderr, "gobrelay: value %d: encode: %v\n", n, err)
			os.Exit(1)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gobrelay:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gobrelay: %d values\n", n)
}
