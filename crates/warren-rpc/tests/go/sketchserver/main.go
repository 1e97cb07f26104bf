// The server of the original sketch (docs: "Coming from Go net/rpc"), as written there with
// only its typos fixed (`type Todo struct`, a missing import of nothing else). It binds
// rpc.sock in its working directory. Run by crates/warren-rpc/tests/go_gob.rs.
package main

import (
	"log"
	"net"
	"net/http"
	"net/rpc"
)

type Task []string
type Todo struct{ ID string }

func (t Task) Get(id string, reply *Todo) error {
	*reply = Todo{ID: id}
	return nil
}

func main() {
	task := new(Task)
	// Publish the receivers methods
	err := rpc.Register(task)
	if err != nil {
		log.Fatal("Format of service Task isn't correct. ", err)
	}
	// Register a HTTP handler
	rpc.HandleHTTP()
	listener, e := net.Listen("unix", "rpc.sock")
	if e != nil {
		log.Fatal("Listen error: ", e)
	}
	err = http.Serve(listener, nil)
	if err != nil {
		log.Fatal("Error serving: ", err)
	}
}
