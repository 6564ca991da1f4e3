package main

import (
	"io/ioutil"
	"os"

	"github.com/golang/protobuf/proto"
	openapi_v2 "github.com/googleapis/gnostic/openapiv2"
)

// swagger2pb IN.json OUT.pb: an OpenAPI v2 document as kubectl asks for it
// (application/com.github.proto-openapi.spec.v2@v1.0+protobuf).
func main() {
	b, err := ioutil.ReadFile(os.Args[1])
	if err != nil { panic(err) }
	doc, err := openapi_v2.ParseDocument(b)
	if err != nil { panic(err) }
	out, err := proto.Marshal(doc)
	if err != nil { panic(err) }
	if err := ioutil.WriteFile(os.Args[2], out, 0644); err != nil { panic(err) }
}
