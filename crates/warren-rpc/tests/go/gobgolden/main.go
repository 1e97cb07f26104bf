// Golden vectors for warren's gob codec: writes random values with Go's own gob encoder, and
// checks that a stream warren encoded back holds the same values. Run by
// crates/warren-rpc/tests/go_gob.rs.
//
// Usage: gobgolden write|check SEED COUNT FILE
package main

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"strconv"
)

type Nested struct {
	X int
	Y string
}

type V struct {
	I  int64
	U  uint64
	F  float64
	S  string
	B  []byte
	Ok bool
	L  []int32
	M  map[string]uint32
	N  *Nested
	Ns []Nested
	Mi map[int64][]string
}

func word(r *rand.Rand) string {
	b := make([]byte, r.Intn(6))
	for i := range b {
		b[i] = byte('a' + r.Intn(26))
	}
	return string(b)
}

// Empty slices and maps are nil: gob does not tell them apart.
func value(r *rand.Rand) V {
	v := V{I: r.Int63() - r.Int63(), U: r.Uint64() >> uint(r.Intn(64)), F: r.NormFloat64() * 1e6, S: word(r), Ok: r.Intn(2) == 0}
	if n := r.Intn(4); n > 0 {
		v.B = make([]byte, n)
		r.Read(v.B)
	}
	for i := r.Intn(4); i > 0; i-- {
		v.L = append(v.L, r.Int31()-r.Int31())
	}
	if n := r.Intn(3); n > 0 {
		v.M = map[string]uint32{}
		for i := 0; i < n; i++ {
			v.M[word(r)] = r.Uint32() >> uint(r.Intn(32))
		}
	}
	if r.Intn(2) == 0 {
		v.N = &Nested{X: r.Intn(100) - 50, Y: word(r)}
	}
	for i := r.Intn(3); i > 0; i-- {
		v.Ns = append(v.Ns, Nested{X: r.Intn(3), Y: word(r)})
	}
	if r.Intn(2) == 0 {
		v.Mi = map[int64][]string{r.Int63n(1000) - 500: {word(r), word(r)}}
	}
	return v
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: gobgolden write|check SEED COUNT FILE")
		os.Exit(2)
	}
	seed, _ := strconv.ParseInt(os.Args[2], 10, 64)
	count, _ := strconv.Atoi(os.Args[3])
	r := rand.New(rand.NewSource(seed))
	values := make([]V, count)
	for i := range values {
		values[i] = value(r)
	}
	switch os.Args[1] {
	case "write":
		var out bytes.Buffer
		enc := gob.NewEncoder(&out)
		for _, v := range values {
			if err := enc.Encode(v); err != nil {
				panic(err)
			}
		}
		if err := os.WriteFile(os.Args[4], out.Bytes(), 0o600); err != nil {
			panic(err)
		}
	case "check":
		data, err := os.ReadFile(os.Args[4])
		if err != nil {
			panic(err)
		}
		dec := gob.NewDecoder(bytes.NewReader(data))
		for i, want := range values {
			var got V
			if err := dec.Decode(&got); err != nil {
				fmt.Fprintf(os.Stderr, "value %d: %v\n", i, err)
				os.Exit(1)
			}
			if !reflect.DeepEqual(want, got) {
				fmt.Fprintf(os.Stderr, "value %d: wrote %+v, read back %+v\n", i, want, got)
				os.Exit(1)
			}
		}
		fmt.Printf("ok %d\n", count)
	}
}
