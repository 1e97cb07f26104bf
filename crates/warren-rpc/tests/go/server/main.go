// A Go net/rpc server that serves JSON-RPC with jsonrpc.ServeConn, Go's standard library only,
// for warren's JSON-RPC client to call. Run by crates/warren-rpc/tests/go_interop.rs.
//
// Usage: server SOCKET
//
// It prints "listening" once the socket accepts connections, and serves until its stdin closes;
// then it removes the socket and exits.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"sync"
	"time"
)

type Todo struct {
	ID string `json:"id"`
}

// Task is the service: Task.Get, Task.Fail and Task.Gather.
type Task struct {
	mu       sync.Mutex
	arrived  int
	gathered chan struct{}
}

const gather = 16

func (t *Task) Get(id string, reply *Todo) error {
	*reply = Todo{ID: id}
	return nil
}

func (t *Task) Fail(id string, reply *Todo) error {
	return errors.New("no such todo: " + id)
}

// Gather answers once 16 calls have arrived, so it succeeds only for a client that has that
// many in flight at once.
func (t *Task) Gather(id string, reply *Todo) error {
	t.mu.Lock()
	t.arrived++
	if t.arrived == gather {
		close(t.gathered)
	}
	t.mu.Unlock()
	select {
	case <-t.gathered:
		*reply = Todo{ID: id}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the other calls never arrived")
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: server SOCKET")
		os.Exit(2)
	}
	path := os.Args[1]
	if err := rpc.Register(&Task{gathered: make(chan struct{})}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		listener.Close()
		os.Remove(path)
		os.Exit(0)
	}()
	fmt.Println("listening")
	for {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		go jsonrpc.ServeConn(conn)
	}
}
