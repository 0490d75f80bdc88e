module github.com/sendfiled/sendfiled/bindings/go

go 1.21
