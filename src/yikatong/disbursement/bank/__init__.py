"""The bank interface (社银平台): one connector per bank turns a batch into the bank's files and reads
back its returns and statements. The core speaks only the records of `records`."""
