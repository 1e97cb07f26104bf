// A Go program that calls a warren service with nothing but Go's standard library:
// net/rpc/jsonrpc over the service's Unix socket. Run by crates/warren-rpc/tests/go_interop.rs,
// which checks what it prints.
//
// Usage: client SOCKET
package main

import (
	"fmt"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"sync"
)

// Todo is the reply of Task.Get: the JSON of the Rust struct Todo { id: String }.
type Todo struct {
	ID string `json:"id"`
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: client SOCKET")
		os.Exit(2)
	}
	client, err := jsonrpc.Dial("unix", os.Args[1])
	if err != nil {
		fail("dial", err)
	}
	defer client.Close()

	var todo Todo
	if err := client.Call("Task.Get", "new_id", &todo); err != nil {
		fail("Task.Get", err)
	}
	fmt.Printf("get: %s\n", todo.ID)

	// Sixteen calls in flight at once on the one connection. Task.Gather answers none of them
	// until all sixteen are running, so this passes only if the server runs them concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("concurrent-%d", i)
			var todo Todo
			if err := client.Call("Task.Gather", id, &todo); err != nil {
				errs <- err
			} else if todo.ID != id {
				errs <- fmt.Errorf("asked for %s, got %s", id, todo.ID)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail("concurrent calls", err)
	}
	fmt.Println("concurrent: 16 ok")

	// An error is a string (rpc.ServerError); the connection survives it.
	err = client.Call("Task.Fail", "new_id", &todo)
	if _, ok := err.(rpc.ServerError); !ok {
		fail("Task.Fail", fmt.Errorf("expected a server error, got %v", err))
	}
	fmt.Printf("error: %s\n", err)

	err = client.Call("Task.Nope", "new_id", &todo)
	if _, ok := err.(rpc.ServerError); !ok {
		fail("Task.Nope", fmt.Errorf("expected a server error, got %v", err))
	}
	fmt.Printf("unknown: %s\n", err)

	// A method that takes and returns nothing: Go sends struct{}{} and needs a non-null result.
	var none struct{}
	if err := client.Call("Task.Touch", struct{}{}, &none); err != nil {
		fail("Task.Touch", err)
	}
	fmt.Println("unit: ok")

	if err := client.Call("Task.Get", "still here", &todo); err != nil {
		fail("Task.Get after the errors", err)
	}
	fmt.Printf("after: %s\n", todo.ID)
}
