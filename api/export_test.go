package api

import "strings"

// Route is one endpoint the server registers, as the tests see it.
type Route struct {
	Method, Path string
	// Open routes need no bearer token.
	Open bool
}

// Routes lists what the server registers, from the one route table.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out[i] = Route{Method: method, Path: path, Open: rt.access == noToken}
	}
	return out
}
