"""Using trained networks outside training: predictions for unlabelled images (`predict`), the
networks exported with a model card (`export`) and loaded back (`model`), class activation maps
(`explain`) and their HTML gallery (`gallery`)."""
