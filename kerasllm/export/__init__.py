"""Export: trained runs -> SavedModels that stock TF Serving can load."""
