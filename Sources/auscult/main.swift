import ArgumentParser
Auscult.main()
