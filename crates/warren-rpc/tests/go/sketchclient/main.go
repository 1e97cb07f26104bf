// The client of the original sketch, as written there with only its typos fixed (`Todo`, and a
// main around it that prints the reply). It dials rpc.sock in its working directory. Run by
// crates/warren-rpc/tests/go_gob.rs.
package main

import (
	"fmt"
	"log"
	"net/rpc"
)

type Todo struct{ ID string }

func main() {
	client, err := rpc.DialHTTP("unix", "rpc.sock")
	if err != nil {
		log.Fatal(err)
	}
	reply := Todo{}
	err = client.Call("Task.Get", "new_id", &reply)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.ID)
}
