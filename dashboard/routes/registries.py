from dashboard.views import registries

registries.render()
