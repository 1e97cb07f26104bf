// A Go program that calls a warren service with Go's net/rpc and its default codec, gob, as an
// unmodified Go program does: rpc.DialHTTP (an HTTP CONNECT, then gob) or rpc.Dial (gob from
// the first byte). Run by crates/warren-rpc/tests/go_gob.rs, which checks what it prints.
//
// Usage: gobclient http|plain SOCKET
package main

import (
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"reflect"
	"sync"
)

// Todo is the sketch's reply type; the Rust side is Todo { id: String }.
type Todo struct {
	ID string
}

// Item, Inner and Doc nest structs, slices, maps, []byte and a pointer; Rust has the same
// shapes with snake_case field names.
type Item struct {
	N     uint64
	Label string
}

type Inner struct {
	Level int64
	Ratio float64
	Ok    bool
	Items []Item
}

type Doc struct {
	Name   string
	Tags   []string
	Counts map[string]int
	Blob   []byte
	Inner  Inner
	Ptr    *string
	Empty  []string
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gobclient http|plain SOCKET")
		os.Exit(2)
	}
	var client *rpc.Client
	var err error
	if os.Args[1] == "http" {
		client, err = rpc.DialHTTP("unix", os.Args[2])
	} else {
		client, err = rpc.Dial("unix", os.Args[2])
	}
	if err != nil {
		fail("dial", err)
	}
	defer client.Close()

	reply := Todo{}
	if err := client.Call("Task.Get", "new_id", &reply); err != nil {
		fail("Task.Get", err)
	}
	fmt.Printf("get: %s\n", reply.ID)

	// 64 calls at once on the one connection: the server answers none of them until all 64
	// are running, so they pass only if they overlap.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var todo Todo
			id := fmt.Sprintf("todo-%d", i)
			if err := client.Call("Task.Gather", id, &todo); err != nil {
				errs <- err
			} else if todo.ID != id {
				errs <- fmt.Errorf("call %d answered with %q", i, todo.ID)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		fmt.Fprintln(os.Stderr, "concurrent:", err)
	}
	fmt.Printf("concurrent: %d ok\n", 64-failed)

	err = client.Call("Task.Fail", "new_id", &reply)
	var serverError rpc.ServerError
	if !errors.As(err, &serverError) {
		fail("Task.Fail did not fail with a ServerError", err)
	}
	fmt.Printf("error: %s\n", serverError)

	err = client.Call("Task.Nope", "x", &reply)
	fmt.Printf("unknown: %v\n", err)

	text := "pointed at"
	doc := Doc{
		Name:   "doc",
		Tags:   []string{"a", "", "c"},
		Counts: map[string]int{"one": 1, "minus": -7, "zero": 0},
		Blob:   []byte{0, 1, 2, 255},
		Inner:  Inner{Level: -3, Ratio: 0.25, Ok: true, Items: []Item{{N: 1, Label: "x"}, {N: 1 << 40}}},
		Ptr:    &text,
	}
	var back Doc
	if err := client.Call("Task.Echo", doc, &back); err != nil {
		fail("Task.Echo", err)
	}
	if !reflect.DeepEqual(doc, back) {
		fail("Task.Echo", fmt.Errorf("sent %+v, got back %+v", doc, back))
	}
	// A zero value: Go sends none of its fields.
	var zero Doc
	if err := client.Call("Task.Echo", Doc{}, &zero); err != nil {
		fail("Task.Echo of a zero Doc", err)
	}
	if zero.Name != "" || zero.Ptr != nil || zero.Inner.Level != 0 {
		fail("Task.Echo of a zero Doc", fmt.Errorf("got back %+v", zero))
	}
	fmt.Println("echo: ok")

	if err := client.Call("Task.Get", "again", &reply); err != nil {
		fail("last Task.Get", err)
	}
	fmt.Printf("after: %s\n", reply.ID)
}
