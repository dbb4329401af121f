"""What an Inception block is, independent of how it runs: a GoogLeNet block's channel configuration (``spec``) and
parameter set (``params``), the block program that describes any later block type (``program``), the programs of
every block type and network (``programs``, the catalogue), and the recognition of existing blocks by their structure
(``structure``)."""
