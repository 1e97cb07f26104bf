module warren.bench/netrpc

go 1.19
