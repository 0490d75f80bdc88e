module github.com/sendfiled/sendfiled/tests/conformance/runners/go

go 1.21

require github.com/sendfiled/sendfiled/bindings/go v0.0.0

replace github.com/sendfiled/sendfiled/bindings/go => ../../../../bindings/go
