"""Dataset preparers: one plain ``prepare_<name>`` function per source, each writing the
same manifest format (see ``pipeline.data.manifest``)."""
