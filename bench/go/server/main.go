// The Go net/rpc server of the benchmarks, standard library only: the design of the Go original
// (rpc.Register + rpc.HandleHTTP + http.Serve on a Unix listener, gob), or the same service
// with the net/rpc/jsonrpc codec.
//
// Usage: server [-codec gob|json] [-signals-only] SOCKET
//
// It prints "ready" once the socket accepts connections, and serves until its stdin closes
// (unless -signals-only) or it gets SIGTERM or SIGINT; then it removes the socket and exits.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"os/signal"
	"syscall"
)

// Todo is Task.Get's reply.
type Todo struct {
	ID string
}

// Task is the service: Task.Get and Task.Echo.
type Task struct{}

func (t *Task) Get(id string, reply *Todo) error {
	*reply = Todo{ID: id}
	return nil
}

func (t *Task) Echo(data []byte, reply *[]byte) error {
	*reply = data
	return nil
}

func main() {
	codec := flag.String("codec", "gob", "gob (rpc.HandleHTTP + http.Serve) or json (jsonrpc.ServeConn)")
	signalsOnly := flag.Bool("signals-only", false, "do not stop when stdin closes")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: server [-codec gob|json] [-signals-only] SOCKET")
		os.Exit(2)
	}
	path := flag.Arg(0)
	if err := rpc.Register(new(Task)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	switch *codec {
	case "gob":
		rpc.HandleHTTP()
		go http.Serve(listener, nil)
	case "json":
		go func() {
			for {
				conn, err := listener.Accept()
				if err != nil {
					return
				}
				go jsonrpc.ServeConn(conn)
			}
		}()
	default:
		fmt.Fprintln(os.Stderr, "unknown codec", *codec)
		os.Exit(2)
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	if !*signalsOnly {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case <-signals:
	}
	listener.Close()
	os.Remove(path)
}
