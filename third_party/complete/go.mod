module github.com/posener/complete

go 1.13
